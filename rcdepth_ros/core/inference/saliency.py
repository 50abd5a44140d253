"""
Grad-CAM saliency for dense depth outputs, in one code path for inference and for saliency distillation.

For a layer with activation A (B, K, h, w) and a scalar target y computed from the predicted depth,
``alpha_k = mean_ij dy/dA_kij`` and ``S = relu(sum_k alpha_k A_k)``; S is normalised per map to [0, 1] (default
``'max'``: divided by its maximum, so 0 keeps meaning "no positive evidence"; ``'minmax'``: (S - min) / (max - min);
an all-zero map stays zero), after an optional bilinear resize, so each map at the requested size peaks at 1.

Targets (``saliency_target``): ``'mean'`` (mean predicted depth), a box ``(x0, y0, x1, y1)`` in depth-map pixels
(end exclusive), or a mask (H, W) / (B, 1, H, W) (weighted mean). Over a batch, y is the sum of the per-sample
targets; with the model in eval mode samples do not interact, so each map is that sample's own Grad-CAM.

Usage (one forward, one backward):

    with GradCAM(model, layer) as cam:
        out = model(image, radar)
        y = saliency_target(out['depth'], 'mean')
        saliency = grad_cam(cam.activation, y, create_graph=False)   # teacher / inference: detached map

For the student in saliency distillation pass ``create_graph=True``: the map keeps its graph to the student's
parameters (and the forward graph is retained for the other losses). ``compute_saliency`` wraps the inference
case. Nothing is kept between calls: the hook is removed and the captured activation dropped on exit, and without
``create_graph`` the autograd graph is freed by the backward pass.
"""

from rcdepth_ros.errors import ConfigError, ModelInputError
import torch
import torch.nn.functional as F

NORMALISATIONS = ('max', 'minmax')


class GradCAM:
    """
    Context manager capturing the output of the module named ``layer`` of ``model`` during forward passes.

    ``layer=None`` takes ``model.saliency_layers[0]``. When the captured output does not require grad (a frozen
    model), it is replaced by a detached copy that does, so dy/dA exists while no graph is built below the layer.
    """

    def __init__(self, model, layer=None):
        """Resolve the layer; raise ConfigError naming it if the model has no such module."""
        candidates = tuple(getattr(model, 'saliency_layers', ()))
        layer = layer or (candidates[0] if candidates else None)
        modules = dict(model.named_modules())
        if not layer or layer not in modules:
            raise ConfigError(f'saliency layer {layer!r} is not a module of {type(model).__name__}; suggested: '
                              f'{list(candidates)}')
        self.layer = layer
        self.module = modules[layer]
        self.activation = None
        self._handle = None

    def _capture(self, module, args, output):
        if not torch.is_tensor(output):
            raise ConfigError(f'saliency layer {self.layer!r} returns {type(output).__name__}, not a tensor')
        if not output.requires_grad:
            output = output.detach().requires_grad_(True)
            self.activation = output
            return output
        self.activation = output
        return None

    def __enter__(self):
        """Register the forward hook."""
        self._handle = self.module.register_forward_hook(self._capture)
        return self

    def __exit__(self, *exc_info):
        """Remove the hook and drop the captured activation."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = None
        self.activation = None
        return False


def saliency_target(depth, target='mean'):
    """Return the scalar y: the sum over the batch of each sample's mean predicted depth over the target region."""
    if depth.dim() != 4 or depth.shape[1] != 1:
        raise ModelInputError(f'saliency: depth must be (B, 1, H, W), got {tuple(depth.shape)}')
    height, width = depth.shape[-2:]
    depth = depth.float()   # the mean of a large fp16 map loses precision
    if isinstance(target, str):
        if target != 'mean':
            raise ConfigError(f"saliency target must be 'mean', a box (x0, y0, x1, y1) or a mask, got {target!r}")
        return depth.mean(dim=(1, 2, 3)).sum()
    if torch.is_tensor(target):
        mask = target.to(depth.dtype)
        if mask.dim() == 2:
            mask = mask.view(1, 1, height, width)
        if mask.shape[-2:] != depth.shape[-2:]:
            raise ModelInputError(f'saliency: mask {tuple(target.shape)} does not match depth {tuple(depth.shape)}')
        total = mask.expand_as(depth).sum(dim=(1, 2, 3))
        if bool((total <= 0).any()):
            raise ModelInputError('saliency: the target mask selects no pixel')
        return ((depth * mask).sum(dim=(1, 2, 3)) / total).sum()
    try:
        x0, y0, x1, y1 = (int(round(float(v))) for v in target)
    except (TypeError, ValueError):
        raise ConfigError(f'saliency target must be "mean", a box (x0, y0, x1, y1) or a mask, got {target!r}') \
            from None
    x0, x1 = max(0, x0), min(width, x1)
    y0, y1 = max(0, y0), min(height, y1)
    if x1 <= x0 or y1 <= y0:
        raise ModelInputError(f'saliency: box {tuple(target)} is empty inside the {height}x{width} (HxW) depth map')
    return depth[:, :, y0:y1, x0:x1].mean(dim=(1, 2, 3)).sum()


def normalise_maps(cam, mode='max'):
    """
    Normalise each (B, 1, h, w) map to [0, 1] per ``mode`` ('max' or 'minmax'); constant maps become zero.

    No epsilon is added (Grad-CAM values can be far below any fixed epsilon); a zero range divides by one instead,
    which keeps gradients finite for the differentiable variant.
    """
    if mode not in NORMALISATIONS:
        raise ConfigError(f'saliency normalisation must be one of {NORMALISATIONS}, got {mode!r}')
    peak = cam.amax(dim=(2, 3), keepdim=True)
    low = cam.amin(dim=(2, 3), keepdim=True) if mode == 'minmax' else torch.zeros_like(peak)
    span = peak - low
    return (cam - low) / torch.where(span > 0, span, torch.ones_like(span))


def grad_cam(activation, target, create_graph=False, normalise='max', size=None, retain_graph=None,
             grad_scale=1.0):
    """
    Return Grad-CAM maps (B, 1, h, w) in [0, 1] (float32) of ``activation`` for the scalar ``target``.

    One backward pass (``torch.autograd.grad``). ``create_graph=True`` keeps the map differentiable (student
    distillation; the forward graph is then retained); otherwise the map is detached and the graph freed unless
    ``retain_graph``. ``size`` (h, w) resizes bilinearly before normalising. ``grad_scale`` multiplies dy/dA
    (the normalised map does not change): the number of target pixels keeps fp16 gradients of a mean clear of
    underflow.
    """
    if activation is None:
        raise ConfigError('saliency: no activation was captured (did the forward pass run inside GradCAM?)')
    retain = create_graph if retain_graph is None else retain_graph
    seed = torch.full_like(target, float(grad_scale))
    (grads,) = torch.autograd.grad(target, activation, grad_outputs=seed, create_graph=create_graph,
                                   retain_graph=retain)
    alpha = grads.float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * activation.float()).sum(dim=1, keepdim=True))
    if size is not None and tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam, size=tuple(int(s) for s in size), mode='bilinear', align_corners=False)
    cam = normalise_maps(cam, normalise)
    return cam if create_graph else cam.detach()


def compute_saliency(model, image, radar, layer=None, target='mean', size=None, normalise='max'):
    """
    Run ``model`` once with Grad-CAM on ``layer``; return (detached outputs dict, saliency (B, 1, h, w)).

    ``size`` defaults to the input size. Gradients are enabled just for this call; nothing is kept afterwards.
    """
    size = tuple(image.shape[-2:]) if size is None else size
    with torch.enable_grad(), GradCAM(model, layer) as cam:
        out = model(image, radar)
        y = saliency_target(out['depth'], target)
        saliency = grad_cam(cam.activation, y, create_graph=False, normalise=normalise, size=size)
    return detach_outputs(out), saliency


def detach_outputs(value):
    """Return ``value`` (a tensor, or dicts / lists / tuples of them) with every tensor detached."""
    if torch.is_tensor(value):
        return value.detach()
    if isinstance(value, dict):
        return {k: detach_outputs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(detach_outputs(v) for v in value)
    return value
