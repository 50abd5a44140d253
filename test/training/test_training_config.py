"""The experiment schema: bases, overrides, strictness, and every shipped experiment YAML."""

from pathlib import Path

import pytest
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.paths import SOURCE_ROOT
from training.config import experiment_from_dict, load_experiment, load_with_bases, merge
import yaml

CONFIGS = SOURCE_ROOT / 'training' / 'configs'


def test_merge_mappings_key_by_key_and_replace_the_rest():
    base = {'a': {'x': 1, 'y': [1, 2]}, 'b': 2}
    assert merge(base, {'a': {'y': [3]}, 'c': 4}) == {'a': {'x': 1, 'y': [3]}, 'b': 2, 'c': 4}
    assert base == {'a': {'x': 1, 'y': [1, 2]}, 'b': 2}


def test_bases_chain_lists_and_cycles(tmp_path):
    (tmp_path / 'model.yaml').write_text(yaml.safe_dump({'input': {'height': 64, 'width': 128},
                                                         'model': {'architecture': 'student'}}))
    (tmp_path / 'common.yaml').write_text(yaml.safe_dump({'input': {'width': 256}, 'train': {'epochs': 3}}))
    (tmp_path / 'exp.yaml').write_text(yaml.safe_dump({'base': ['model.yaml', 'common.yaml'], 'train': {'lr': 0.5}}))
    data = load_with_bases(tmp_path / 'exp.yaml')
    assert data['input'] == {'height': 64, 'width': 256}          # later bases win, mappings merge
    assert data['train'] == {'epochs': 3, 'lr': 0.5} and 'base' not in data
    (tmp_path / 'a.yaml').write_text('base: b.yaml\n')
    (tmp_path / 'b.yaml').write_text('base: a.yaml\n')
    with pytest.raises(ConfigError, match='cycle'):
        load_with_bases(tmp_path / 'a.yaml')
    (tmp_path / 'bad.yaml').write_text('base: 3\n')
    with pytest.raises(ConfigError, match='base must be'):
        load_with_bases(tmp_path / 'bad.yaml')


def test_overrides_and_defaults(tmp_path, tiny_experiment, write_experiment):
    path = write_experiment(tiny_experiment())
    exp = load_experiment(path, ['train.epochs=5', 'distill.dd.tau=0.5', 'train.amp=off'])
    assert exp.train.epochs == 5 and exp.distill.dd.tau == 0.5 and exp.train.amp == 'off'
    assert exp.input.height == 64 and exp.model.head.num_bins == 16 and exp.data.source == 'synthetic'
    assert exp.loss.supervised == 'l1' and exp.distill.enabled_terms() == []
    assert exp.to_dict()['train']['epochs'] == 5


@pytest.mark.parametrize('override, message', [
    ('train.epochz=3', 'epochz'),
    ('train.epochs=0', 'train.epochs'),
    ('train.amp=fp8', 'train.amp'),
    ('loss.supervised=l2', 'loss.supervised'),
    ('data.source=kitti', 'data.source'),
    ('distill.dd.enabled=true', 'distill.teacher is not set'),
    ('distill.teacher=x', 'no distillation term'),
    ('distill.saliency.loss=huber', 'saliency.loss'),
    ('distill.saliency.target=[1, 2]', 'saliency.target'),
    ('model.head.num_bins=1', 'num_bins'),
    ('loss.radar_branch_weight=1.0', 'teacher architecture'),
    ('data.augment.seed=3', 'train.seed'),
    ('surprise=1', 'unknown top-level'),
])
def test_bad_values_name_the_key(tiny_experiment, write_experiment, override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment(write_experiment(tiny_experiment()), [override])


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match='cannot read'):
        load_experiment(tmp_path / 'nope.yaml')


def test_augment_null_disables_it(tiny_experiment):
    data = tiny_experiment()
    data['data']['augment'] = None
    assert experiment_from_dict(data).data.augment is None


def _experiment_files():
    return sorted(p for p in CONFIGS.glob('*.yaml') if not p.stem.endswith('_base'))


def test_every_shipped_experiment_loads():
    files = _experiment_files()
    names = {p.stem for p in files}
    assert {'astyx_teacher', 'astyx_lircdepth', 'astyx_student_direct', 'astyx_student_dd', 'astyx_student_saliency',
            'astyx_student_xd', 'astyx_student_lirckd', 'astyx_student_camera', 'synthetic_student',
            'synthetic_student_camera'} <= names
    for path in files:
        exp = load_experiment(path)
        assert exp.name, f'{path} has no name (its default run directory)'
        if exp.distill.enabled_terms():
            assert exp.distill.teacher


def test_table_rows_differ_only_where_they_should():
    direct = load_experiment(CONFIGS / 'astyx_student_direct.yaml').to_dict()
    for name, terms in (('astyx_student_dd', ['dd']), ('astyx_student_saliency', ['saliency']),
                        ('astyx_student_xd', ['dd', 'saliency'])):
        exp = load_experiment(CONFIGS / f'{name}.yaml')
        assert exp.distill.enabled_terms() == terms
        other = exp.to_dict()
        for section in ('input', 'model', 'data', 'train', 'loss'):
            assert other[section] == direct[section], f'{name}: section {section} differs from the direct student'
    teacher = load_experiment(CONFIGS / 'astyx_teacher.yaml')
    assert teacher.model.architecture == 'teacher' and teacher.input == load_experiment(
        CONFIGS / 'astyx_student_direct.yaml').input
    lidar_teacher = load_experiment(CONFIGS / 'astyx_teacher_lidar.yaml')
    assert lidar_teacher.model.lidar_input.enabled and lidar_teacher.input == teacher.input
    assert lidar_teacher.data.train.split == 'fit' and lidar_teacher.data.val.split == 'dev'
    xd = load_experiment(CONFIGS / 'astyx_student_xd.yaml')
    assert Path(xd.distill.teacher).parent.parent == Path('runs') / lidar_teacher.name
    assert xd.distill.targets.offline and xd.data.train.split == 'fit' and xd.data.val.split == 'dev'
