"""
The CUDA checks of the inference path, as a plain script: the GPU machine has torch but neither pytest nor rclpy.

Run by ``benchmarks/gpu_check.sh`` (which then times the engine and the worker pipeline with
``bench_inference.py --device cuda``). Each check prints one PASS / FAIL / SKIP line; ``--out`` gets a JSON report;
the exit status is 1 when a check failed. Without CUDA the environment and CPU checks run and every CUDA check is
skipped (exit status 3, "stopped before the CUDA checks"): ``test/benchmarks_gpu_check`` runs it so on the CPU.

Checks (models with seeded random weights, or the bundled demo model from ``weights/``; no data set is needed):

- environment: the imports the inference path needs, and none of the ROS / data-set packages;
- cpu_device_preprocess: the torch preprocessing equals the host path on the CPU (900x1600 -> 448x800);
- cuda_device_preprocess: the same on CUDA (pinned upload, OpenCV's bytes), and the restore's NaN pixels;
- cuda_graphs: fp16 forward replayed from a CUDA graph equals eager; a new batch size re-captures (counted);
  Grad-CAM captured too; an input-size change mid-stream re-plans and stays right;
- cuda_precision: every model configuration in fp32, fp16 and bf16 on CUDA, no non-finite value, close to fp32;
- cuda_oom: with the allocator capped, a batch that does not fit is split and retried, never an exception;
- cuda_engine_agrees: the bundled model on CUDA fp16 (device preprocessing, graphs) agrees with the CPU fp32
  engine on the same frames.
"""

import argparse
import dataclasses
import json
from pathlib import Path
import sys
import time
import traceback

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FORBIDDEN = ('rclpy', 'rosbags', 'nuscenes', 'matplotlib', 'pytest')
STOPPED_BEFORE_CUDA = 3


class Skip(Exception):
    """A check that cannot run here."""


def frame(height, width, returns=300, seed=0):
    """Return (uint8 image, RadarPoints, K) of a made-up frame."""
    from rcdepth_ros.core.sensor_types import RadarPoints
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    z = rng.uniform(3.0, 80.0, returns)
    xyz = np.column_stack([rng.uniform(-0.6, 0.6, returns) * z, rng.uniform(-0.05, 0.15, returns) * z, z])
    radar = RadarPoints(xyz, rcs=rng.uniform(-10, 20, returns), v_radial=rng.uniform(-5, 5, returns))
    K = np.array([[0.8 * width, 0.0, width / 2.0], [0.0, 0.8 * width, height / 2.0], [0.0, 0.0, 1.0]])
    return image, radar, K


def student(height, width, name='student'):
    """Return (model, input_cfg, model_cfg) of ``config/models/<name>.yaml`` at ``height`` x ``width`` (random)."""
    import torch
    from rcdepth_ros.config import apply_overrides, load_yaml
    from rcdepth_ros.models import build_model, load_model_config
    data = apply_overrides(load_yaml(ROOT / 'config' / 'models' / f'{name}.yaml'),
                           [f'input.height={height}', f'input.width={width}'])
    input_cfg, model_cfg = load_model_config(data)
    torch.manual_seed(0)
    return build_model(model_cfg, input_cfg, load_pretrained=False).eval(), input_cfg, model_cfg


def need_cuda():
    import torch
    if not torch.cuda.is_available():
        raise Skip('CUDA is not available')


def check_environment():
    import importlib
    import torch
    missing = []
    for name in ('numpy', 'cv2', 'yaml', 'safetensors', 'tqdm', 'onnxruntime'):
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    import rcdepth_ros.core.inference.engine  # noqa: F401 - the inference path imports without ROS
    loaded = sorted(n for n in FORBIDDEN if n in sys.modules)
    assert not loaded, f'the inference path imported {loaded}'
    info = {'python': sys.version.split()[0], 'torch': torch.__version__, 'numpy': np.__version__,
            'cuda': torch.version.cuda, 'gpu': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            'missing_optional': missing}
    assert 'onnxruntime' not in missing or True     # onnxruntime is optional for the CUDA checks
    return info


def _preprocess_equal(device):
    import torch
    from rcdepth_ros.config import InputConfig
    from rcdepth_ros.core.geometry.model_input import prepare_model_input
    from rcdepth_ros.core.inference.preprocess import DevicePreprocessor
    cases = [((900, 1600), InputConfig(height=448, width=800)), ((900, 1600), InputConfig(height=896, width=1600)),
             ((618, 2048), InputConfig(height=192, width=640, radar_vertical_extension_m=1.0))]
    for (height, width), cfg in cases:
        pre = DevicePreprocessor(cfg, device)
        for seed in range(2):
            image, radar, K = frame(height, width, seed=seed)
            expected = prepare_model_input(image, radar, K, cfg)
            got = pre.prepare(image, radar, K)
            assert np.array_equal(got.image[0].cpu().numpy(), expected.image), f'image {height}x{width} {cfg}'
            assert np.array_equal(got.radar_raw, expected.radar_raw), f'radar {height}x{width}'
            maps = torch.rand(1, cfg.height, cfg.width, device=device) * 100
            restored = pre.restore(maps, expected.transform)[0].cpu().numpy()
            reference = expected.transform.restore(maps[0].cpu().numpy())
            assert np.array_equal(np.isnan(restored), np.isnan(reference))
            assert np.nanmax(np.abs(restored - reference)) <= 1e-4
    return {'cases': len(cases)}


def check_cpu_device_preprocess():
    return _preprocess_equal('cpu')


def check_cuda_device_preprocess():
    need_cuda()
    return _preprocess_equal('cuda')


def check_cuda_graphs():
    need_cuda()
    from rcdepth_ros.core.inference.engine import InferenceEngine
    source = student(448, 800)
    graphed = InferenceEngine(source, device='cuda', precision='fp16')
    eager = InferenceEngine(source, device='cuda', precision='fp16', cuda_graphs=False)
    frames = [frame(900, 1600, seed=s) for s in range(3)]
    for image, radar, K in frames:
        a, b = graphed.infer(image, radar, K), eager.infer(image, radar, K)
        assert np.array_equal(np.isnan(a.depth), np.isnan(b.depth))
        assert np.nanmax(np.abs(a.depth - b.depth)) < 0.05, np.nanmax(np.abs(a.depth - b.depth))
    stats = graphed.stats()
    assert stats['graph_captures'] == 1 and stats['graph_replays'] >= 2, stats
    batch = graphed.infer_batch([f[0] for f in frames[:2]], [f[1] for f in frames[:2]], [f[2] for f in frames[:2]])
    assert graphed.stats()['graph_recaptures'] == 1, graphed.stats()
    for (image, radar, K), result in zip(frames[:2], batch):
        single = eager.infer(image, radar, K)
        assert np.nanmax(np.abs(result.depth - single.depth)) < 0.05
    salient = graphed.infer(*frames[0], saliency=True)
    reference = eager.infer(*frames[0], saliency=True)
    assert salient.saliency.max() > 0.5 and np.abs(salient.saliency - reference.saliency).max() < 0.05
    image, radar, K = frame(720, 1280, seed=5)              # the camera changes size mid-stream
    small = graphed.infer(image, radar, K)
    assert small.depth.shape == (720, 1280)
    assert np.nanmax(np.abs(small.depth - eager.infer(image, radar, K).depth)) < 0.05
    assert graphed.stats()['input_size_changes'] >= 1 and graphed.stats()['graph_failures'] == 0
    return graphed.stats()


def check_cuda_precision():
    need_cuda()
    import torch
    from rcdepth_ros.config import InputConfig
    from rcdepth_ros.core.geometry.model_input import prepare_model_input
    from rcdepth_ros.models.batchnorm_folding import fuse_batch_norm
    names = sorted(p.stem for p in (ROOT / 'config' / 'models').glob('*.yaml'))
    report = {}
    for name in names:
        model, input_cfg, _ = student(192, 640, name)
        model = fuse_batch_norm(model.requires_grad_(False), inplace=True)
        inputs = [prepare_model_input(*frame(900, 1600, seed=s), input_cfg) for s in range(2)]
        image = torch.from_numpy(np.stack([m.image for m in inputs])).cuda()
        radar = torch.from_numpy(np.stack([m.radar for m in inputs])).cuda()
        outputs = {}
        for precision in ('fp32', 'fp16', 'bf16'):
            dtype = torch.float16 if precision == 'fp16' else torch.float32
            net = model.to('cuda', dtype)
            with torch.inference_mode(), torch.autocast('cuda', torch.bfloat16, enabled=precision == 'bf16'):
                outputs[precision] = net(image.to(dtype), radar.to(dtype))['depth'].float()
            bad = int((~torch.isfinite(outputs[precision])).sum())
            assert bad == 0, f'{name} {precision}: {bad} non-finite depths'
        errors = {p: float((outputs[p] - outputs['fp32']).abs().median()) for p in ('fp16', 'bf16')}
        assert max(errors.values()) < 0.01 * InputConfig().max_depth, (name, errors)
        report[name] = errors
    return report


def check_cuda_oom():
    need_cuda()
    import torch
    from rcdepth_ros.core.inference.engine import InferenceEngine
    engine = InferenceEngine(student(448, 800), device='cuda', precision='fp32', cuda_graphs=False)
    frames = [frame(900, 1600, seed=s) for s in range(8)]
    single = [engine.infer(*f).depth for f in frames[:2]]
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    engine.infer(*frames[0])
    peak = torch.cuda.max_memory_allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, (torch.cuda.memory_allocated() + 3 * peak) / total))
    try:
        results = engine.infer_batch([f[0] for f in frames], [f[1] for f in frames], [f[2] for f in frames])
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert engine.stats()['oom_fallbacks'] >= 1, engine.stats()
    for expected, result in zip(single, results):
        assert np.nanmax(np.abs(result.depth - expected)) < 1e-3
    return engine.stats()


def check_cuda_engine_agrees():
    need_cuda()
    from rcdepth_ros.core.inference.bundled_model import resolve_model_path
    from rcdepth_ros.core.inference.engine import InferenceEngine
    from rcdepth_ros.models import load_checkpoint
    model, input_cfg, model_cfg, _ = load_checkpoint(resolve_model_path(''))
    source = (model, dataclasses.replace(input_cfg, height=448, width=800), model_cfg)
    gpu = InferenceEngine(source, device='cuda')
    cpu = InferenceEngine(source, device='cpu')
    assert gpu.precision == 'fp16' and gpu.preprocess_mode == 'device'
    errors = []
    for seed in range(2):
        image, radar, K = frame(900, 1600, seed=seed)
        a, b = gpu.infer(image, radar, K), cpu.infer(image, radar, K)
        assert np.array_equal(np.isnan(a.depth), np.isnan(b.depth))
        errors.append(float(np.nanmedian(np.abs(a.depth - b.depth))))
    assert max(errors) < 0.5, errors
    return {'median_abs_error_m': errors, 'stats': gpu.stats()}


CHECKS = [('environment', check_environment), ('cpu_device_preprocess', check_cpu_device_preprocess),
          ('cuda_device_preprocess', check_cuda_device_preprocess), ('cuda_graphs', check_cuda_graphs),
          ('cuda_precision', check_cuda_precision), ('cuda_oom', check_cuda_oom),
          ('cuda_engine_agrees', check_cuda_engine_agrees)]


def main(argv=None):
    """Run the checks; return 0 (all passed), 1 (a check failed) or 3 (no CUDA: stopped before the CUDA checks)."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('--out', default=None, help='JSON report')
    parser.add_argument('--only', default=None, help='comma-separated check names')
    args = parser.parse_args(argv)
    wanted = set(args.only.split(',')) if args.only else None
    report, failed, skipped = {}, [], []
    for name, check in CHECKS:
        if wanted and name not in wanted:
            continue
        start = time.perf_counter()
        try:
            detail = check()
            status = 'PASS'
        except Skip as exc:
            status, detail = 'SKIP', str(exc)
            skipped.append(name)
        except Exception as exc:  # noqa: B902 - report every failing check, then go on to the next
            status, detail = 'FAIL', f'{type(exc).__name__}: {exc}'
            failed.append(name)
            traceback.print_exc()
        seconds = time.perf_counter() - start
        report[name] = {'status': status, 'seconds': round(seconds, 1), 'detail': detail}
        print(f'{status} {name} ({seconds:.1f} s): {json.dumps(detail, default=str)[:300]}', flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2, default=str) + '\n')
    if failed:
        print(f'FAILED: {", ".join(failed)}')
        return 1
    if any(name.startswith('cuda') for name in skipped):
        print('stopped before the CUDA checks: CUDA is not available here')
        return STOPPED_BEFORE_CUDA
    print('all checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
