"""
XD-RCDepth's two distillation terms (``../shared/docs/method.md`` section 3): ``dd`` and ``saliency``.

Depth-distribution KD (``DepthDistributionTerm``): KL(p_T || p_S) per pixel over K depth bins with centres c_k,
averaged over the pixels of its ``mask``. Each side's distribution comes from bin logits where the model has a bin head
with these bins (softmax(logits / T)), else from a depth map, ``p_k = softmax_k(-|d - c_k| / tau_k)``: ``tau: spacing``
makes tau_k the width of bin k, so a depth spreads over about its two neighbouring bins whatever the spacing (a fixed
tau of 1 m spreads a near depth over many of the narrow near 'sid' bins and makes a far one one-hot among the wide far
bins, so the gradient swings with where d sits between centres). ``mask``: 'all' pixels, or only those the teacher can
vouch for: 'lidar_band' (between the highest and the lowest lidar return of the pixel's column, where the teacher's
input rings and the held-out rings it was checked on lie) and 'lidar_band_confident' (also its bin distribution's std
below ``max_relative_std`` of its depth).

Saliency KD (``SaliencyTerm``): the student's Grad-CAM map is pulled towards the teacher's (detached) by L1, L2
or cosine distance (``saliency_map_loss``). The student's map is differentiable: ``alpha: graph`` keeps the
channel weights' own graph (double backward through the layers above the saliency layer), ``alpha: detached``
treats them as constants of the step and sends the gradient through the activation only (one plain backward).
A teacher map of another size (offline targets cut to the augmented view) is resized and normalised again.
"""

import dataclasses
import typing

from rcdepth_ros.core.inference.saliency import grad_cam, GradCAM, normalise_maps, saliency_target
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models import bin_centers
from rcdepth_ros.models.config import BIN_SPACINGS
from rcdepth_ros.models.heads import bin_edges, distribution_statistics
import torch
import torch.nn.functional as F
from training.losses.base import KDTerm, TermConfig

DD_MASKS = ('all', 'lidar_band', 'lidar_band_confident')
DD_TEACHER = ('auto', 'logits', 'depth')


def soft_depth_log_distribution(depth, centers, tau):
    """
    Return log p (B, K, H, W) with ``p_k = softmax_k(-|depth - c_k| / tau_k)`` for depth (B, 1, H, W).

    ``tau`` is a number or a (K,) tensor of per-bin temperatures (``bin_widths``).
    """
    tau = tau.float().view(1, -1, 1, 1) if torch.is_tensor(tau) else float(tau)
    logits = -(depth.float() - centers.float().view(1, -1, 1, 1)).abs() / tau
    return F.log_softmax(logits, dim=1)


def bin_widths(num_bins, spacing, min_depth, max_depth):
    """Return the (K,) float32 widths of the bins whose centres ``rcdepth_ros.models.bin_centers`` gives."""
    edges = bin_edges(num_bins, spacing, min_depth, max_depth)
    return (edges[1:] - edges[:-1]).float()


def lidar_band(gt_mask, margin=0):
    """
    Return the (B, 1, H, W) bool mask of pixels between the highest and the lowest valid lidar pixel of their column.

    ``margin`` rows are added above and below. Columns without lidar are empty.
    """
    valid = gt_mask.to(torch.int32)
    below_first = valid.cumsum(dim=2) > 0
    above_last = valid.flip(2).cumsum(dim=2).flip(2) > 0
    band = below_first & above_last
    if margin > 0:
        band = F.max_pool2d(band.float(), (2 * margin + 1, 1), stride=1, padding=(margin, 0)) > 0
    return band


def masked_mean(values, mask):
    """Return the mean of ``values`` (B, 1, H, W) over ``mask`` (0 when it is empty, still differentiable)."""
    m = mask.to(values.dtype)
    return (values * m).sum() / m.sum().clamp_min(1.0)


def student_log_distribution_from_logits(logits, tau=1.0):
    """Return log p (B, K, H, W) of a bin head's logits at temperature ``tau``."""
    return F.log_softmax(logits.float() / float(tau), dim=1)


def kl_map(teacher_log_p, student_log_p):
    """Return KL(p_T || p_S) per pixel (B, 1, H, W) of two log distributions (B, K, H, W); the teacher is detached."""
    if student_log_p.shape[1] != teacher_log_p.shape[1]:
        raise ConfigError(f'depth-distribution KD: the student distribution has {student_log_p.shape[1]} bins, '
                          f"the teacher's {teacher_log_p.shape[1]}")
    teacher_log_p = teacher_log_p.detach().float()
    return (teacher_log_p.exp() * (teacher_log_p - student_log_p.float())).sum(dim=1, keepdim=True)


def depth_distribution_kd(student_log_p, teacher_depth, centers, tau, mask=None):
    """
    Return KL(p_T || p_S) summed over bins and averaged over the pixels of ``mask`` (None: every pixel).

    ``student_log_p`` (B, K, H, W) is the student's log distribution (from its depth map with
    ``soft_depth_log_distribution`` or from its logits); ``teacher_depth`` (B, 1, H, W) is turned into p_T with the
    same ``centers`` and ``tau``. The teacher's entropy term is included, so a student equal to the teacher scores 0.
    """
    if student_log_p.shape[1] != centers.numel():
        raise ConfigError(f'depth-distribution KD: the student distribution has {student_log_p.shape[1]} bins, '
                          f'the centres {centers.numel()}')
    kl = kl_map(soft_depth_log_distribution(teacher_depth.detach(), centers, tau), student_log_p)
    return kl.mean() if mask is None else masked_mean(kl, mask)


def saliency_map_loss(student_map, teacher_map, kind='l1'):
    """
    Return the distance between saliency maps (B, 1, h, w): 'l1' mean |S - T|, 'l2' mean (S - T)^2, 'cosine'.

    'cosine' is ``1 - cos(S, T)`` of the flattened maps, averaged over the batch (an all-zero map has cosine 0).
    """
    if student_map.shape != teacher_map.shape:
        raise ConfigError(f'saliency KD: student map {tuple(student_map.shape)} and teacher map '
                          f'{tuple(teacher_map.shape)} differ; resize both to a common size')
    teacher_map = teacher_map.detach()
    if kind == 'l1':
        return (student_map - teacher_map).abs().mean()
    if kind == 'l2':
        return ((student_map - teacher_map) ** 2).mean()
    if kind == 'cosine':
        cos = F.cosine_similarity(student_map.flatten(1), teacher_map.flatten(1), dim=1, eps=1e-8)
        return (1.0 - cos).mean()
    raise ConfigError(f"saliency KD loss must be 'l1', 'l2' or 'cosine', got {kind!r}")


def resize_map(value, size):
    """Return ``value`` (B, C, h, w) resized bilinearly to ``size`` (h, w); unchanged when it already fits."""
    if tuple(value.shape[-2:]) == tuple(size):
        return value
    return F.interpolate(value, size=tuple(size), mode='bilinear', align_corners=False)


def distribution_centers(num_bins, spacing, min_depth, max_depth, device=None):
    """Return the bin centres (K,) of the KD distribution (``rcdepth_ros.models.bin_centers``) on ``device``."""
    return bin_centers(num_bins, spacing, min_depth, max_depth).to(device or torch.device('cpu'))


def distribution_centers_match(a, b):
    """Return True when two bin-centre tensors describe the same bins."""
    return a is not None and b is not None and a.numel() == b.numel() and \
        bool(torch.allclose(a.float().cpu(), b.float().cpu(), rtol=1e-5, atol=1e-5))


@dataclasses.dataclass
class DepthDistributionKD(TermConfig):
    """
    ``dd``: XD-RCDepth depth-distribution KD (see the module docstring).

    ``num_bins`` / ``spacing`` / ``min_depth`` / ``max_depth`` define the bins when the student's own are not
    used. ``student_logits``: p_S from the student's bin logits (its bins then define the distribution).
    ``teacher``: p_T from the teacher's 'logits' (needs a teacher bin head with the same bins), its 'depth', or
    'auto' (logits when they fit). ``tau``: a temperature in metres for distributions made from depth (and the
    softmax temperature of logits), or 'spacing' (per-bin widths for depth; logits at temperature 1).
    """

    term = 'dd'
    num_bins: int = 64
    spacing: str = 'sid'
    min_depth: float = 0.5
    max_depth: float = 100.0
    tau: typing.Union[float, str] = 1.0
    student_logits: bool = False
    teacher: str = 'depth'
    mask: str = 'all'
    max_relative_std: float = 0.1
    band_margin: int = 0

    def __post_init__(self):
        """Check the options."""
        super().__post_init__()
        self.need(self.num_bins >= 2 and 0 < self.min_depth < self.max_depth, 'num_bins',
                  'need num_bins >= 2 and 0 < min_depth < max_depth')
        self.need(self.spacing in BIN_SPACINGS, 'spacing', f'must be one of {BIN_SPACINGS}, got {self.spacing!r}')
        self.need(self.tau == 'spacing' if isinstance(self.tau, str) else self.tau > 0, 'tau',
                  f"must be > 0 or 'spacing', got {self.tau!r}")
        self.need(self.teacher in DD_TEACHER, 'teacher', f'must be one of {DD_TEACHER}, got {self.teacher!r}')
        self.need(self.mask in DD_MASKS, 'mask', f'must be one of {DD_MASKS}, got {self.mask!r}')
        self.need(self.max_relative_std > 0 and self.band_margin >= 0, 'max_relative_std',
                  'need max_relative_std > 0 and band_margin >= 0')


class DepthDistributionTerm(KDTerm):
    """The ``dd`` term."""

    name = 'dd'
    Config = DepthDistributionKD
    needs = frozenset({'depth', 'logits', 'uncertainty'})

    def __init__(self, cfg, student, teacher_info, experiment):
        """Fix the bins, the temperature and which distribution each side contributes."""
        super().__init__(cfg, student, teacher_info, experiment)
        head = student.model_cfg.head
        if cfg.student_logits and head.kind != 'bins':
            raise ConfigError('distill.dd.student_logits needs a student with a bin head')
        if cfg.student_logits:
            num, spacing, low, high = head.num_bins, head.spacing, head.min_depth, head.max_depth
        else:
            num, spacing, low, high = cfg.num_bins, cfg.spacing, cfg.min_depth, cfg.max_depth
        centers = bin_centers(num, spacing, low, high)
        self.register_buffer('centers', centers, persistent=False)
        self.register_buffer('widths', bin_widths(num, spacing, low, high), persistent=False)
        teacher_centers = (teacher_info or {}).get('bin_centers')
        fits = distribution_centers_match(teacher_centers, centers)
        if cfg.teacher == 'logits' and not fits:
            raise ConfigError(f"distill.dd.teacher: logits needs a teacher bin head with the distribution's "
                              f'{num} {spacing!r} bins over {low}..{high} m; this teacher has '
                              f'{"none" if teacher_centers is None else f"{teacher_centers.numel()} other bins"}')
        self.teacher_logits = cfg.teacher == 'logits' or (cfg.teacher == 'auto' and fits)
        self.temperature = 1.0 if isinstance(cfg.tau, str) else float(cfg.tau)

    def teacher_outputs(self):
        """Return depth, plus the bin logits when p_T or the confidence mask comes from them."""
        return {'depth'} | ({'logits'} if self.teacher_logits or self.cfg.mask == 'lidar_band_confident' else set())

    def _tau(self):
        return self.widths if self.cfg.tau == 'spacing' else float(self.cfg.tau)

    def vouch_mask(self, context):
        """Return the (B, 1, H, W) mask of pixels the loss averages over (see ``DepthDistributionKD.mask``)."""
        teacher = context.teacher
        depth = teacher['depth']
        mask = torch.ones_like(depth, dtype=torch.bool)
        if teacher.get('valid') is not None:
            mask &= teacher['valid'] > 0.5
        if self.cfg.mask == 'all':
            return mask
        mask &= lidar_band(context.gt_mask, self.cfg.band_margin)
        if self.cfg.mask == 'lidar_band_confident':
            std = teacher.get('uncertainty')
            if std is None:
                if teacher.get('logits') is None:
                    raise ConfigError("distill.dd.mask lidar_band_confident needs the teacher's bin distribution "
                                      '(a teacher with a bin head)')
                _, std = distribution_statistics(teacher['logits'].float(), teacher['bin_centers'])
            mask &= std.float() < self.cfg.max_relative_std * depth.float().clamp_min(1e-3)
        return mask

    def forward(self, context):
        """Return the masked mean KL(p_T || p_S)."""
        student, teacher = context.student, context.teacher
        if self.cfg.student_logits:
            student_log_p = F.log_softmax(student['logits'].float() / self.temperature, dim=1)
        else:
            student_log_p = soft_depth_log_distribution(student['depth'], self.centers, self._tau())
        if self.teacher_logits:
            teacher_log_p = F.log_softmax(teacher['logits'].float() / self.temperature, dim=1)
        else:
            teacher_log_p = soft_depth_log_distribution(teacher['depth'], self.centers, self._tau())
        return masked_mean(kl_map(teacher_log_p, student_log_p), self.vouch_mask(context))


@dataclasses.dataclass
class SaliencyKD(TermConfig):
    """
    ``saliency``: the teacher's Grad-CAM is the target of the student's.

    ``loss``: 'l1', 'l2' or 'cosine'. ``target``: 'mean' (each sample's mean predicted depth) or a box
    [x0, y0, x1, y1] in model input pixels. Layers default to each model's ``saliency_layers[0]`` (a decoder layer
    at 1/8 after the radar fusion, in the student and in a student-architecture teacher alike). Both maps are
    resized to the input size divided by ``size_divisor`` before normalising (``normalise``: 'max' or 'minmax').
    ``alpha``: 'graph' or 'detached' (see the module docstring).
    """

    term = 'saliency'
    loss: str = 'l1'
    target: typing.Union[str, typing.List[int]] = 'mean'
    student_layer: typing.Optional[str] = None
    teacher_layer: typing.Optional[str] = None
    size_divisor: int = 8
    normalise: str = 'max'
    alpha: str = 'graph'

    def __post_init__(self):
        """Check the options."""
        super().__post_init__()
        self.need(self.loss in ('l1', 'l2', 'cosine'), 'loss', f"must be 'l1', 'l2' or 'cosine', got {self.loss!r}")
        self.need(self.target == 'mean' or (isinstance(self.target, list) and len(self.target) == 4), 'target',
                  f"must be 'mean' or a box [x0, y0, x1, y1], got {self.target!r}")
        self.need(self.size_divisor in (1, 2, 4, 8, 16, 32), 'size_divisor', 'must be 1, 2, 4, .., 32')
        self.need(self.normalise in ('max', 'minmax'), 'normalise', "must be 'max' or 'minmax'")
        self.need(self.alpha in ('graph', 'detached'), 'alpha', "must be 'graph' or 'detached'")

    def saliency_target(self):
        """Return the Grad-CAM target in the form ``rcdepth_ros.core.inference.saliency`` takes."""
        return self.target if isinstance(self.target, str) else tuple(int(v) for v in self.target)

    def size(self, image_size):
        """Return the (h, w) both maps are compared at, for an input of ``image_size`` (H, W)."""
        return (int(image_size[0]) // self.size_divisor, int(image_size[1]) // self.size_divisor)


def student_grad_cam(activation, target, alpha='graph', normalise='max', size=None, grad_scale=1.0):
    """
    Return the student's differentiable Grad-CAM maps (B, 1, h, w).

    ``alpha='graph'`` is ``grad_cam(create_graph=True)``; ``'detached'`` computes the channel weights without a
    graph (the forward graph is kept for the other losses) and differentiates through the activation only.
    """
    if alpha == 'graph':
        return grad_cam(activation, target, create_graph=True, normalise=normalise, size=size, grad_scale=grad_scale)
    (grads,) = torch.autograd.grad(target, activation, grad_outputs=torch.full_like(target, float(grad_scale)),
                                   retain_graph=True)
    weights = grads.detach().float().mean(dim=(2, 3), keepdim=True)
    cam = F.relu((weights * activation.float()).sum(dim=1, keepdim=True))
    if size is not None and tuple(cam.shape[-2:]) != tuple(size):
        cam = F.interpolate(cam, size=tuple(int(s) for s in size), mode='bilinear', align_corners=False)
    return normalise_maps(cam, normalise)


class SaliencyTerm(KDTerm):
    """The ``saliency`` term."""

    name = 'saliency'
    Config = SaliencyKD
    needs = frozenset({'depth', 'saliency'})

    def __init__(self, cfg, student, teacher_info, experiment):
        """Resolve the student's layer now (a typo fails before training)."""
        super().__init__(cfg, student, teacher_info, experiment)
        GradCAM(student, cfg.student_layer)                  # raises ConfigError naming a wrong layer
        self.teacher_saliency = cfg

    def capture(self, student):
        """Capture the student's saliency layer during its forward."""
        return GradCAM(student, self.cfg.student_layer)

    def after_forward(self, context, captured):
        """Compute the student's map while the activation is captured."""
        depth = context.student['depth']
        size = self.cfg.size(depth.shape[-2:])
        y = saliency_target(depth, self.cfg.saliency_target())
        context.extras[self.name] = student_grad_cam(captured.activation, y, self.cfg.alpha, self.cfg.normalise,
                                                     size, grad_scale=float(depth.shape[-2] * depth.shape[-1]))

    def forward(self, context):
        """Return the distance between the student's map and the teacher's."""
        student_map = context.extras[self.name]
        teacher_map = context.teacher['saliency'].detach().float()
        if tuple(teacher_map.shape[-2:]) != tuple(student_map.shape[-2:]):
            teacher_map = normalise_maps(F.adaptive_avg_pool2d(teacher_map, tuple(student_map.shape[-2:])),
                                         self.cfg.normalise)
        return saliency_map_loss(student_map, teacher_map, self.cfg.loss)
