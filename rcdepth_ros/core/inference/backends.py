"""
The engine's backends: what runs the network's forward pass on prepared input tensors.

``TorchBackend``: the torch model on its device in one precision: ``fp32``; ``fp16`` (weights and activations in
float16; CUDA, and the CPU for tests); ``bf16`` (``torch.autocast`` to bfloat16, weights kept in float32: the
CPU's bf16 matrix units, and CUDA). Its forward and Grad-CAM passes are CUDA graphs on CUDA (``graphs``).

``OnnxRuntimeBackend``: the model exported to ONNX and run by onnxruntime (its CPU provider; the CUDA provider
when the engine's device is CUDA and onnxruntime has it). Precision ``fp32``, or ``int8``: static quantisation
(QDQ format, per-channel int8 weights, uint8 activations calibrated on real frames) of the fp32 file. onnxruntime
is optional: imported when this backend is made.

The ONNX files are made on first use and cached (``onnx_model``): beside the checkpoint when its folder is
writable, else under ``$RCDEPTH_CACHE/onnx`` (default ``~/.cache/rcdepth_ros/onnx``), named by the SHA-256 of
the checkpoint's files, the input size and the precision, with a JSON record beside each. A cached file whose
record matches (same checkpoint digest, size, precision, export version, and the file's own SHA-256) is used as
it is, never exported again; a missing, stale or corrupt one is rebuilt with a warning.
"""

import copy
import hashlib
import json
import logging
import os
from pathlib import Path
import tempfile

import numpy as np
from rcdepth_ros.config import to_dict
from rcdepth_ros.core.inference.graphs import GraphedCall
from rcdepth_ros.core.inference.saliency import grad_cam, GradCAM, saliency_target
from rcdepth_ros.errors import ConfigError, ExportError, ModelInputError
from rcdepth_ros.models.checkpoint import checkpoint_paths
from rcdepth_ros.models.export import export_onnx
import torch

LOGGER = logging.getLogger('rcdepth_ros')
# Part of every cached file's record: a change to how files are exported or quantised makes old ones stale.
EXPORT_VERSION = 2
ONNX_OPSET = 17


# ----------------------------------------------------------------------------------------------------------------
# torch
# ----------------------------------------------------------------------------------------------------------------

class TorchBackend:
    """
    A frozen torch model on one device in one precision; ``forward`` and ``forward_saliency`` return the outputs.

    ``model`` must already be in eval mode, on ``device`` in the weight dtype (float16 for fp16, else float32) and
    memory format the engine chose. Outputs are dicts with ``depth`` and, for bin heads, ``uncertainty``
    ((B, 1, h, w) tensors on the device); on CUDA they belong to a CUDA graph until the next call.
    """

    name = 'torch'

    def __init__(self, model, device, precision='fp32', saliency_layer=None, cuda_graphs=True, counters=None):
        """Wrap the model; set up the graphed forward and saliency calls (captured on first use)."""
        if precision not in ('fp32', 'fp16', 'bf16'):
            raise ConfigError(f'the torch backend runs fp32, fp16 or bf16, got precision {precision!r}')
        self.model = model
        self.device = torch.device(device)
        self.precision = precision
        self.input_dtype = torch.float16 if precision == 'fp16' else torch.float32
        self.saliency_layer = GradCAM(model, saliency_layer).layer
        self._forward = GraphedCall(self._run, 'forward', enabled=cuda_graphs, counters=counters)
        self._saliency = GraphedCall(self._run_saliency, 'saliency', enabled=cuda_graphs, grad=True,
                                     counters=counters)

    @property
    def graphs(self):
        """Return the graphed calls (forward, saliency)."""
        return self._forward, self._saliency

    def _autocast(self):
        if self.precision == 'bf16':
            # no cast cache: a CUDA graph cannot capture it, and frozen weights gain nothing from it
            return torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
        return torch.autocast(self.device.type, enabled=False)

    @staticmethod
    def _outputs(out):
        return {k: out[k] for k in ('depth', 'uncertainty') if k in out}

    def _run(self, image, radar):
        with self._autocast():
            return self._outputs(self.model(image, radar))

    def _run_saliency(self, image, radar, mask=None):
        with GradCAM(self.model, self.saliency_layer) as cam, self._autocast():
            out = self.model(image, radar)
            depth = out['depth']
            target = saliency_target(depth, 'mean') if mask is None else saliency_target(depth, mask)
            maps = grad_cam(cam.activation, target, create_graph=False, size=tuple(image.shape[-2:]),
                            grad_scale=float(depth.shape[-2] * depth.shape[-1]))
        result = {k: v.detach() for k, v in self._outputs(out).items()}
        result['saliency'] = maps
        return result

    def forward(self, image, radar):
        """Return the outputs of one forward pass (inference mode)."""
        return self._forward(image.to(self.input_dtype), radar.to(self.input_dtype))

    def forward_saliency(self, image, radar, targets):
        """
        Return the outputs plus ``saliency`` (B, 1, h, w) in [0, 1]: one forward and one backward pass.

        ``targets``: per frame 'mean' or a box (x0, y0, x1, y1) in model pixels. Boxes become a mask, so each
        frame's map is that frame's own Grad-CAM of the mean depth in its box.
        """
        image, radar = image.to(self.input_dtype), radar.to(self.input_dtype)
        if all(isinstance(t, str) and t == 'mean' for t in targets):
            return self._saliency(image, radar)
        height, width = image.shape[-2:]
        mask = torch.zeros((image.shape[0], 1, height, width), dtype=torch.float32, device=image.device)
        for i, target in enumerate(targets):
            if isinstance(target, str):
                if target != 'mean':
                    raise ConfigError(f"saliency target must be 'mean' or a box (x0, y0, x1, y1), got {target!r}")
                mask[i] = 1.0
                continue
            x0, y0, x1, y1 = (int(v) for v in target)
            x0, x1, y0, y1 = max(0, x0), min(int(width), x1), max(0, y0), min(int(height), y1)
            if x1 <= x0 or y1 <= y0:
                raise ModelInputError(f'saliency: box {tuple(target)} is empty inside the {height}x{width} model '
                                      f'input')
            mask[i, :, y0:y1, x0:x1] = 1.0
        return self._saliency(image, radar, mask)


# ----------------------------------------------------------------------------------------------------------------
# onnxruntime
# ----------------------------------------------------------------------------------------------------------------

class OnnxRuntimeBackend:
    """An onnxruntime session over an exported model; ``forward`` takes and returns torch tensors."""

    name = 'onnxruntime'

    def __init__(self, path, device='cpu', threads=None, precision='fp32', spinning=False):
        """Open the session (CPU provider; CUDA provider first when ``device`` is CUDA and available)."""
        import onnxruntime   # optional dependency, needed only for this backend
        self.path = Path(path)
        self.device = torch.device(device)
        self.precision = precision
        self.input_dtype = torch.float32
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(threads or torch.get_num_threads())
        options.inter_op_num_threads = 1
        if not spinning:
            # threads that wait on the next op sleep instead of spinning: other stages share the cores
            options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        providers = ['CPUExecutionProvider']
        if self.device.type == 'cuda' and 'CUDAExecutionProvider' in onnxruntime.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=providers)
        except Exception as exc:   # noqa: B902 - onnxruntime raises its own exception types
            raise ExportError(f'{self.path}: onnxruntime cannot load the model ({exc})') from exc
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.has_uncertainty = 'uncertainty' in self.output_names

    def forward(self, image, radar):
        """Return {'depth', ['uncertainty']} (B, 1, h, w) float32 CPU tensors."""
        feeds = {'image': np.ascontiguousarray(image.detach().to('cpu', torch.float32).numpy()),
                 'radar': np.ascontiguousarray(radar.detach().to('cpu', torch.float32).numpy())}
        outputs = self.session.run(None, feeds)
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, outputs)}


# ----------------------------------------------------------------------------------------------------------------
# The ONNX cache
# ----------------------------------------------------------------------------------------------------------------

def file_digest(paths):
    """Return the SHA-256 (hex) of the bytes of ``paths``, in order."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, 'rb') as handle:
            for block in iter(lambda: handle.read(1 << 20), b''):
                digest.update(block)
    return digest.hexdigest()


def model_digest(model, input_cfg, model_cfg):
    """Return the SHA-256 (hex) of a model's configs and weights (for models that are not checkpoint files)."""
    digest = hashlib.sha256(json.dumps({'input': to_dict(input_cfg), 'model': to_dict(model_cfg)},
                                       sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().to('cpu', torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()


def default_cache_dir():
    """Return the user cache folder of ONNX files: ``$RCDEPTH_CACHE/onnx`` or ``~/.cache/rcdepth_ros/onnx``."""
    root = os.environ.get('RCDEPTH_CACHE')
    return Path(root) / 'onnx' if root else Path.home() / '.cache' / 'rcdepth_ros' / 'onnx'


def _writable(folder):
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def cache_location(checkpoint, digest, height, width, precision, folder=None):
    """Return the path of a cached ONNX file (beside ``checkpoint`` when writable, else the user cache folder)."""
    stem = Path(checkpoint).name.split('.')[0] if checkpoint else 'model'
    if folder is None:
        folder = Path(checkpoint).parent if checkpoint else default_cache_dir()
        if not _writable(folder):
            fallback = default_cache_dir()
            LOGGER.info('%s is not writable: ONNX files are cached in %s', folder, fallback)
            folder = fallback
    return Path(folder) / f'{stem}.{digest[:16]}.{int(height)}x{int(width)}.{precision}.onnx'


def _record_path(path):
    return Path(path).with_suffix('.json')


def cached_file_ok(path, expected):
    """Return None when ``path`` and its record match ``expected`` (a dict), else the reason it cannot be used."""
    path, record_path = Path(path), _record_path(path)
    if not path.exists():
        return 'not cached yet'
    if not record_path.exists():
        return f'{record_path.name} is missing'
    try:
        record = json.loads(record_path.read_text())
    except (OSError, ValueError) as exc:
        return f'{record_path.name} is unreadable ({exc})'
    for key, value in expected.items():
        if record.get(key) != value:
            return f'{record_path.name}: {key} is {record.get(key)!r}, expected {value!r}'
    if record.get('onnx_sha256') != file_digest([path]):
        return f'{path.name} does not match its recorded SHA-256 (corrupt or changed)'
    return None


def _write_record(path, record):
    record = dict(record, onnx_sha256=file_digest([path]))
    tmp = _record_path(path).with_name(f'.{_record_path(path).name}.tmp-{os.getpid()}')
    tmp.write_text(json.dumps(record, indent=2) + '\n')
    os.replace(tmp, _record_path(path))


def _atomic_build(path, build):
    """Run ``build(tmp_path)`` and move the result to ``path`` (readers never see a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f'.{path.stem}.', suffix='.onnx', dir=path.parent)
    os.close(handle)
    try:
        build(Path(tmp))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def export_fp32(model, path, height, width):
    """Export an fp32 copy of ``model`` (the caller's model is not moved or changed) to ``path``."""
    export_onnx(copy.deepcopy(model).cpu().float().eval(), path, height, width, opset=ONNX_OPSET)


def quantize_int8(fp32_path, path, feeds, float_scopes=('head',)):
    """
    Write the int8 QDQ model of ``fp32_path`` to ``path``, calibrated (min / max) on ``feeds`` (input dicts).

    Weights are quantised per output channel (int8), activations per tensor (uint8). In the modules named by
    ``float_scopes`` only the convolutions are quantised: the depth head's softmax over the bins and the moments
    after it stay in float (quantised probabilities would move the depth by whole bins), while its logits
    convolution is quantised (in float, writing and reordering the 64-bin logits was the largest single cost).
    """
    import onnx   # optional dependency, needed only to quantise
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static, QuantType
    from onnxruntime.quantization.shape_inference import quant_pre_process
    feeds = list(feeds)
    if not feeds:
        raise ConfigError('int8 quantisation needs calibration frames (none were given)')

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._items = iter(feeds)

        def get_next(self):
            return next(self._items, None)

    with tempfile.TemporaryDirectory() as folder:
        prepared = Path(folder) / 'prepared.onnx'
        quant_pre_process(str(fp32_path), str(prepared), skip_symbolic_shape=True)
        nodes = onnx.load(str(prepared)).graph.node
        excluded = [node.name for node in nodes if node.op_type != 'Conv'
                    and any(f'/{scope}/' in node.name for scope in float_scopes)]
        quantize_static(str(prepared), str(path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded)


def onnx_model(model, input_cfg, model_cfg, precision='fp32', checkpoint=None, folder=None, calibration=None):
    """
    Return the path of the cached ONNX file of ``model`` in ``precision`` ('fp32' or 'int8'), making it if needed.

    ``checkpoint``: the checkpoint path the model came from (its files' digest names the cache entry; None: the
    weights' digest, cached in ``folder`` or the user cache folder). ``calibration``: a callable returning
    input dicts, called only when the int8 file has to be made.
    """
    if precision not in ('fp32', 'int8'):
        raise ConfigError(f'the onnxruntime backend runs fp32 or int8, got precision {precision!r}')
    if checkpoint is not None:
        digest = file_digest(checkpoint_paths(checkpoint))
    else:
        digest = model_digest(model, input_cfg, model_cfg)
    height, width = int(input_cfg.height), int(input_cfg.width)
    expected = {'checkpoint_sha256': digest, 'height': height, 'width': width, 'precision': precision,
                'export_version': EXPORT_VERSION, 'opset': ONNX_OPSET}
    path = cache_location(checkpoint, digest, height, width, precision, folder)
    reason = cached_file_ok(path, expected)
    if reason is None:
        return path
    if reason != 'not cached yet':
        LOGGER.warning('cached ONNX file %s cannot be used (%s): making it again', path, reason)
    if precision == 'fp32':
        LOGGER.info('exporting %s to ONNX (%dx%d): %s', model_cfg.architecture, width, height, path)
        _atomic_build(path, lambda tmp: export_fp32(model, tmp, height, width))
    else:
        if calibration is None:
            raise ConfigError(f'{path} is not cached and no calibration frames were given: int8 needs them once '
                              f'(e.g. rcdepth eval --precision int8 --calibration astyx:train:0-49)')
        fp32 = onnx_model(model, input_cfg, model_cfg, 'fp32', checkpoint, folder)
        LOGGER.info('quantising %s to int8 (static, QDQ): %s', fp32.name, path)
        _atomic_build(path, lambda tmp: quantize_int8(fp32, tmp, calibration()))
    _write_record(path, dict(expected, checkpoint=str(checkpoint) if checkpoint else None))
    return path
