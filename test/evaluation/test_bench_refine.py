"""Smoke test of benchmarks/bench_refine.py: every part runs on three frames and the JSON has the documented keys."""

import importlib.util
import json

from rcdepth_ros.paths import SOURCE_ROOT


def _load_bench():
    spec = importlib.util.spec_from_file_location('bench_refine', SOURCE_ROOT / 'benchmarks' / 'bench_refine.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_part_and_a_subset_keeps_the_others(tmp_path, astyx_root, tiny_student):
    from rcdepth_ros.models import save_checkpoint
    checkpoint = save_checkpoint(tmp_path / 'tiny', *tiny_student)
    bench = _load_bench()
    out = tmp_path / 'refine.json'
    bench.main(['--quick', '--model', f'tiny={checkpoint}', '--frames-timed', '2', '--timing-size', '64x128',
                '--out', str(out)])
    results = json.loads(out.read_text())
    assert results['headline_model'] == 'tiny' and set(results['commands']) == set(bench.PARTS)
    accuracy = results['accuracy']['tiny']
    for dataset in ('astyx_val', 'synthetic_test'):
        assert accuracy[dataset]['frames'] == 3
        assert set(accuracy[dataset]['none']) == set(accuracy[dataset]['radar']) == {'50', '70', '80'}
    assert results['astyx_mae80_gain_percent'] == accuracy['astyx_val']['gain_percent']['80']['mae_mm']
    assert set(results['ablation_astyx_val']) == {'none', 'defaults'} | set(bench.ABLATIONS)
    assert results['astyx_radar_vs_lidar']['returns_with_lidar_in_direction'] > 100
    timing = results['timing_cpu']
    assert timing['input'] == '64x128' and timing['astyx_val']['frames'] == 2
    assert timing['astyx_val']['load_average_before'] is not None and timing['astyx_val']['median_thread_cpu_ms'] > 0
    medians = [timing[dataset]['median_ms'] for dataset in ('astyx_val', 'synthetic_test')]
    assert results['cpu_added_ms_p50'] == max(medians)
    # the timing alone again: the other parts stay
    bench.main(['--quick', '--parts', 'timing', '--frames-timed', '2', '--timing-size', '64x128',
                '--out', str(out)])
    again = json.loads(out.read_text())
    assert again['accuracy'] == results['accuracy']
    assert again['commands']['accuracy'] == results['commands']['accuracy']
    assert again['commands']['timing'] != results['commands']['timing']
