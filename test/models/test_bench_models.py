"""Smoke test of benchmarks/bench_models.py: every mode runs and the JSON / table have the documented shape."""

import importlib.util
import json

from rcdepth_ros.paths import SOURCE_ROOT


def _load_bench():
    spec = importlib.util.spec_from_file_location('bench_models', SOURCE_ROOT / 'benchmarks' / 'bench_models.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_json_and_table(tmp_path, capsys):
    bench = _load_bench()
    out = tmp_path / 'bench.json'
    assert bench.main(['--quick', '--sizes', '64x128', '--runs', '1', '--models', 'student,teacher_resnet34',
                       '--out', str(out)]) == 0
    results = json.loads(out.read_text())
    student = results['models']['student']
    assert student['parameters'] > 1e6 and student['sizes']['64x128']['gmac'] > 0
    assert set(student['sizes']['64x128']['latency']) == set(results['modes']) >= set(bench.CPU_MODES)
    assert results['models']['teacher_resnet34']['sizes']['64x128']['latency'] == {}
    table = capsys.readouterr().out
    assert '| student | 3.52 | 64x128 |' in table and 'onnxruntime (ms)' in table
