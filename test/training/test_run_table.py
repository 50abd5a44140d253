"""The table runner on a tiny table: dependencies, two jobs, skipping complete runs, the JSON and markdown."""

import json

import pytest
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.paths import SOURCE_ROOT
from training.run_table import load_table, main as run_table_main, markdown, summarise
import yaml


def _tiny_table(tmp_path, tiny_experiment, tiny_teacher_model, write_experiment):
    short = {'epochs': 1, 'max_steps_per_epoch': 2}
    teacher = write_experiment(tiny_experiment(model=tiny_teacher_model, train=short), 'teacher.yaml')
    student = write_experiment(tiny_experiment(train=short), 'student.yaml')
    camera = tiny_experiment(train=short)
    camera['model'] = dict(camera['model'], fusion={'kind': 'none'})
    camera = write_experiment(camera, 'camera.yaml')
    teacher_final = str(tmp_path / 'runs' / 'tiny' / 'teacher' / 'checkpoints' / 'final')
    xd = write_experiment(tiny_experiment(train=short, distill={'teacher': teacher_final, 'dd': {'enabled': True},
                                                                'saliency': {'enabled': True}}), 'xd.yaml')
    spec = {'results': 'tiny_table',
            'eval': {'source': 'synthetic', 'split': 'val', 'frames': '0-1',
                     'options': {'config': tiny_experiment()['data']['options']['config']}},
            'gate': {'teacher': 'tiny/teacher', 'direct': ['tiny/direct_s1'], 'split': 'val', 'frames': '0-1'},
            'runs': [{'name': 'tiny/teacher', 'config': str(teacher), 'label': 'Teacher'},
                     {'name': 'tiny/direct_s1', 'config': str(student), 'seed': 1, 'group': 'direct'},
                     {'name': 'tiny/direct_s2', 'config': str(student), 'seed': 2, 'group': 'direct'},
                     {'name': 'tiny/camera', 'config': str(camera), 'group': 'camera'},
                     {'name': 'tiny/xd_s1', 'config': str(xd), 'seed': 1, 'group': 'xd'},
                     {'name': 'tiny/xd_s2', 'config': str(xd), 'seed': 2, 'group': 'xd'}]}
    path = tmp_path / 'table.yaml'
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_tiny_table_end_to_end(tmp_path, tiny_experiment, tiny_teacher_model, write_experiment, capsys):
    spec = _tiny_table(tmp_path, tiny_experiment, tiny_teacher_model, write_experiment)
    out, results = tmp_path / 'runs', tmp_path / 'results'
    _, runs = load_table(spec, out, [])
    assert [r.requires for r in runs] == [[], [], [], [], ['tiny/teacher', 'tiny/direct_s1'],
                                          ['tiny/teacher', 'tiny/direct_s1']]
    assert [r.gated for r in runs] == [False] * 4 + [True] * 2
    args = ['--spec', str(spec), '--out', str(out), '--results', str(results), '--jobs', '2', 'train.threads=1']
    assert run_table_main(args) == 0
    result = json.loads((results / 'tiny_table.json').read_text())
    assert [r['name'] for r in result['rows']] == [r.name for r in runs]
    for row in result['rows']:
        assert row['eval_frames'] == 2 and row['parameters'] > 0 and row['steps'] == 2
        assert row['metrics']['caps']['80']['mae'] > 0
    assert result['rows'][1]['seed'] == 1 and result['rows'][2]['seed'] == 2
    assert result['rows'][1]['metrics'] != result['rows'][2]['metrics']        # seeds differ
    seeds = result['summary']['seeds']['80']
    assert seeds['direct']['n'] == 2 and seeds['xd']['n'] == 2
    expected = 100 * (seeds['xd']['mean'] - seeds['direct']['mean']) / seeds['direct']['mean']
    assert seeds['relative_change_percent'] == pytest.approx(expected)
    assert 'astyx' in result['summary']['fusion_gain']
    table = (results / 'tiny_table.md').read_text()
    assert table.count('\n| ') >= 8 and 'KD (mean ± std)' in table and 'Fusion gain' in table
    gate = result['gate']
    assert gate['teacher'] == 'tiny/teacher' and gate['students'] == ['tiny/direct_s1']
    assert gate['pixels'] == 'all lidar rings' and gate['passed'] == (gate['gain_percent'] >= 20)
    assert result['gate_all_direct']['students'] == ['tiny/direct_s1', 'tiny/direct_s2']
    assert 'Gate (checked before the KD rows): Gate ' in table
    assert 'Target here: the KD students >= 8 % lower MAE@80' in table
    # everything is complete and evaluated: a second invocation trains and evaluates nothing
    stamps = {r.name: (r.dir / 'eval' / 'evaluation.json').stat().st_mtime for r in runs}
    capsys.readouterr()
    assert run_table_main(args) == 0
    assert {r.name: (r.dir / 'eval' / 'evaluation.json').stat().st_mtime for r in runs} == stamps


def test_summary_arithmetic():
    def row(group, mae):
        return {'group': group, 'metrics': {'caps': {c: {'mae': mae, 'rmse': 2 * mae} for c in ('50', '70', '80')}}}
    rows = [row('direct', 1000.0), row('direct', 1200.0), row('xd', 900.0), row('xd', 1000.0),
            row('camera', 2000.0)]
    summary = summarise(rows)
    s = summary['seeds']['80']
    assert s['direct']['mean'] == 1100.0 and s['direct']['std'] == pytest.approx(141.421356, rel=1e-6)
    assert s['relative_change_percent'] == pytest.approx(100 * (950.0 - 1100.0) / 1100.0)
    assert summary['fusion_gain']['astyx']['relative_change_percent'] == pytest.approx(100 * (1100 - 2000) / 2000)
    text = markdown({'rows': [], 'summary': summary})
    assert '1100 ± 141 (n=2)' in text and '-13.64 %' in text


def test_default_table_plan(capsys):
    assert run_table_main(['--dry-run', '--out', 'runs']) == 0
    plan = capsys.readouterr().out
    assert plan.count('[') >= 7 and "requires ['astyx/teacher_lidar', 'astyx/student_direct_s42']" in plan
    spec, runs = load_table(SOURCE_ROOT / 'training' / 'tables' / 'distill_astyx.yaml', 'runs', [])
    assert runs[0].name == 'astyx/teacher_lidar' and runs[0].experiment.model.lidar_input.enabled
    assert sum(r.group == 'direct' for r in runs) == 3 and sum(r.group == 'xd' for r in runs) == 3
    assert {r.seed for r in runs if r.group == 'xd'} == {42, 43, 44} == {r.seed for r in runs if r.group == 'direct'}
    assert all(r.eval == {'source': 'astyx', 'split': 'val'} for r in runs)
    assert spec['gate']['split'] == 'dev' and all(r.gated for r in runs if r.group == 'xd')
    # choices are made on the dev frames: no run trains or validates on the table's evaluation frames
    assert all(r.experiment.data.train.split == 'fit' and r.experiment.data.val.split == 'dev' for r in runs)


def test_bad_specs(tmp_path):
    (tmp_path / 'empty.yaml').write_text('runs: []\n')
    with pytest.raises(ConfigError, match='no runs'):
        load_table(tmp_path / 'empty.yaml', 'runs', [])
    (tmp_path / 'noname.yaml').write_text('eval: {source: astyx}\nruns: [{config: x.yaml}]\n')
    with pytest.raises(ConfigError, match="'name'"):
        load_table(tmp_path / 'noname.yaml', 'runs', [])
    assert run_table_main(['--spec', str(tmp_path / 'empty.yaml')]) == 2
