"""The cross-modal (lidar-input) teacher and offline teacher targets: online == offline, crop / flip, staleness."""

import copy
import csv
import json

import numpy as np
import pytest
from rcdepth_ros.config import InputConfig
from rcdepth_ros.data.astyx import AstyxReader
from rcdepth_ros.data.augment import AugmentConfig
from rcdepth_ros.data.dataset import RadarCameraDataset
from rcdepth_ros.errors import ConfigError, ModelInputError
from rcdepth_ros.models import build_model, load_checkpoint, save_checkpoint
from rcdepth_ros.models.config import LidarInputConfig
import torch
from training.config import experiment_from_dict, SplitConfig
from training.gate import check_gate, describe
from training.loop.data import build_dataset
from training.loop.trainer import train
from training.objective import teacher_info, TeacherRunner, TrainingObjective
from training.targets import _write_frame, _write_json, expected_manifest, MANIFEST, open_targets, teacher_hash
from training.targets import TargetStore, teacher_output_from_batch

EVEN_RINGS = list(range(0, 32, 2))          # every other beam of the synthetic 32-beam lidar
ASTYX_RINGS = (0, 1, 4, 5, 8, 9, 12, 13)


def _lidar_teacher_model(tiny_experiment):
    return dict(tiny_experiment()['model'], lidar_input={'rings': EVEN_RINGS})


@pytest.fixture
def lidar_teacher(tmp_path, tiny_experiment):
    """Return the stem of a seeded, untrained student-architecture teacher that reads the even synthetic rings."""
    exp = experiment_from_dict(tiny_experiment(model=_lidar_teacher_model(tiny_experiment)))
    torch.manual_seed(3)
    model = build_model(exp.model, exp.input)
    stem = tmp_path / 'teacher' / 'lidar_teacher'
    save_checkpoint(stem, model, exp.input, exp.model)
    return stem


def _kd_experiment(tiny_experiment, teacher, tmp_path, **targets):
    return experiment_from_dict(tiny_experiment(
        data={'augment': None, 'cache_dir': str(tmp_path / 'cache')},
        distill={'teacher': str(teacher), 'targets': {'offline': True, 'logits_divisor': 1, **targets},
                 'dd': {'enabled': True, 'student_logits': True, 'teacher': 'logits', 'tau': 'spacing',
                        'mask': 'lidar_band'},
                 'saliency': {'enabled': True}}))


def _store(exp, teacher, directory, digest=None):
    model = load_checkpoint(teacher)[0]
    runner = TeacherRunner(model, exp.distill)
    plain = build_dataset(exp.data, exp.input, exp.data.train, 0, augment=False,
                          lidar_input=model.model_cfg.lidar_input)
    expected = expected_manifest(exp, teacher, digest or teacher_hash(teacher), plain.reader,
                                 {'depth', 'logits', 'saliency'}, runner.saliency)
    return open_targets(directory, expected, runner, plain, torch.device('cpu'), log=None), runner, plain, model


def test_lidar_input_items_and_model(astyx_root):
    reader = AstyxReader(astyx_root, radar_image=False, boxes=False).select('0,200')
    cfg = InputConfig(height=96, width=320)
    dataset = RadarCameraDataset(reader, cfg, lidar_rings=ASTYX_RINGS)
    item = dataset[1]
    given, held, every = item['lidar'][1] > 0, item['depth_gt_heldout'][0] > 0, item['depth_gt'][0] > 0
    assert item['lidar'].shape == (2, 96, 320) and given.sum() > 100 and held.sum() > 100
    assert not (given & held).any() and int(given.sum() + held.sum()) >= int(every.sum()) - 5
    assert torch.equal(item['lidar'][0] > 0, given)
    # every other ring by elevation: the held-out rows lie between the input rows
    rows_in = given.float().mean(dim=1).nonzero().flatten().tolist()
    rows_out = held.float().mean(dim=1).nonzero().flatten().tolist()
    assert min(rows_in) < np.median(rows_out) < max(rows_in)
    from rcdepth_ros.models import load_model_config
    _, model_cfg = load_model_config({'input': {'height': 96, 'width': 320},
                                      'model': {'image_encoder': {'name': 'small_cnn'},
                                                'lidar_input': {'rings': list(ASTYX_RINGS)}}})
    model = build_model(model_cfg, cfg).eval()
    image, radar = item['image'][None], item['radar'][None]
    with torch.no_grad():
        assert model(image, radar, lidar=item['lidar'][None])['depth'].shape == (1, 1, 96, 320)
        with pytest.raises(ModelInputError, match='reads lidar'):
            model(image, radar)


def test_the_lidar_teacher_trains_on_the_held_out_rings(tmp_path, tiny_experiment):
    data = tiny_experiment(model=_lidar_teacher_model(tiny_experiment), train={'epochs': 1, 'max_steps_per_epoch': 2})
    summary = train(experiment_from_dict(data), tmp_path / 'teacher')
    assert summary['complete'] and summary['validation'][0]['metrics']['frames'] == 4
    model, _, model_cfg, _ = load_checkpoint(tmp_path / 'teacher' / 'checkpoints' / 'final')
    assert list(model_cfg.lidar_input.rings) == EVEN_RINGS and model.lidar_channels == 2


def test_offline_targets_equal_the_online_teacher_on_unaugmented_frames(tmp_path, tiny_experiment, lidar_teacher):
    exp = _kd_experiment(tiny_experiment, lidar_teacher, tmp_path)
    store, runner, plain, model = _store(exp, lidar_teacher, tmp_path / 'targets')
    assert len(store.frames) == len(plain)
    dataset = build_dataset(exp.data, exp.input, exp.data.train, 0, augment=False, aligned_maps=store,
                            lidar_input=model.model_cfg.lidar_input)
    items = [dataset[i] for i in range(2)]
    batch = {k: torch.stack([it[k] for it in items]) for k in items[0] if torch.is_tensor(items[0][k])}
    online = runner(batch['image'], batch['radar'], batch['lidar'])
    offline = teacher_output_from_batch(batch, 'cpu', teacher_info(model)['bin_centers'])
    assert bool((offline['valid'] == 1).all())                 # 64 rows of a 64-row base: all covered
    torch.testing.assert_close(offline['depth'], online['depth'], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(offline['logits'], online['logits'].float(), rtol=0, atol=2e-2)   # float16 storage
    pooled = torch.nn.functional.adaptive_avg_pool2d(offline['saliency'], online['saliency'].shape[-2:])
    pooled = pooled / pooled.amax(dim=(2, 3), keepdim=True)
    assert float((pooled - online['saliency']).abs().mean()) < 0.05
    # and the distillation terms see the same targets
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    objective = TrainingObjective(student, exp, teacher_info(model))
    args = (batch['image'], batch['radar'], batch['depth_gt'], batch['depth_gt_dense'], batch['has_dense'])
    _, terms_online, _ = objective(*args, online)
    _, terms_offline, _ = objective(*args, offline)
    assert terms_offline['dd'] == pytest.approx(terms_online['dd'], rel=2e-2)
    assert terms_offline['saliency'] == pytest.approx(terms_online['saliency'], rel=0.2, abs=0.02)


def _project(points, K):
    z = points[:, 2]
    return np.stack([K[0, 0] * points[:, 0] / z + K[0, 2], K[1, 1] * points[:, 1] / z + K[1, 2]], axis=1), z


def test_offline_targets_follow_crop_and_flip(tmp_path, astyx_root):
    # The stored maps hold, at each base pixel, that pixel's own coordinates (u, v). After the augmentation's crop,
    # zoom and flip, the map read at the model pixel where a lidar point lands (projected from 3D with the
    # augmented K, the point mirrored when the view is) must give the base pixel of the same point.
    reader = AstyxReader(astyx_root, radar_image=False, boxes=False).select('0,120,300')
    cfg = InputConfig(height=96, width=320)
    plain = RadarCameraDataset(reader, cfg)
    frames, bases = {}, {}
    for index, frame_id in enumerate(plain.frame_ids):
        base = bases[frame_id] = plain.base(index)
        height, width = base['image'].shape[:2]
        v, u = np.mgrid[0:height, 0:width].astype(np.float32)
        name = f'{frame_id}.safetensors'
        _write_frame(tmp_path / name, {'depth': np.ones((height, width), np.float32),
                                       'valid': np.ones((height, width), np.uint8),
                                       'logits': np.stack([u, v]).astype(np.float16)},
                     {'teacher_hash': 'f' * 64, 'frame_id': frame_id})
        frames[frame_id] = name
    store = TargetStore(tmp_path, {'teacher_hash': 'f' * 64, 'frames': frames})
    dataset = RadarCameraDataset(reader, cfg, AugmentConfig(seed=5, zoom=(1.0, 1.3)), aligned_maps=store)
    flips = 0
    for epoch in range(5):
        for index in range(len(dataset)):
            item = dataset[(epoch, index)]
            base = bases[item['frame_id']]
            points = base['lidar_xyz'][base['lidar_xyz'][:, 2] > 1.0]
            at_base, _ = _project(points, base['K'])
            mirrored = points * np.array([-1.0, 1.0, 1.0], np.float32) if bool(item['flipped']) else points
            at_model, _ = _project(mirrored, item['K'].numpy().astype(np.float64))
            cols, rows = np.round(at_model[:, 0]).astype(int), np.round(at_model[:, 1]).astype(int)
            inside = (cols >= 0) & (cols < cfg.width) & (rows >= 0) & (rows < cfg.height)
            assert inside.sum() > 300
            mapped = item['teacher_logits'].numpy()[:, rows[inside], cols[inside]].T        # (N, 2): u, v
            error = np.abs(mapped - at_base[inside]).max(axis=1)
            assert np.median(error) < 0.6 and np.percentile(error, 95) < 1.5, (epoch, index)
            if bool(item['flipped']):
                flips += 1
                unflipped = item['teacher_logits'].numpy()[:, rows[inside], cfg.width - 1 - cols[inside]].T
                assert np.median(np.abs(unflipped - at_base[inside]).max(axis=1)) > 20   # ignoring it is far off
    assert flips >= 3


def test_stale_targets_are_refused_naming_both(tmp_path, tiny_experiment, lidar_teacher):
    exp = _kd_experiment(tiny_experiment, lidar_teacher, tmp_path)
    directory = tmp_path / 'targets'
    _store(exp, lidar_teacher, directory)
    other = tmp_path / 'other' / 'teacher'
    model = load_checkpoint(lidar_teacher)[0]
    torch.nn.init.constant_(model.head.logits.weight, 0.01)
    save_checkpoint(other, model, exp.input, model.model_cfg)
    theirs, mine = teacher_hash(lidar_teacher)[:16], teacher_hash(other)[:16]
    with pytest.raises(ConfigError, match=f'{theirs}.*{mine}'):
        _store(exp, other, directory)
    # through the trainer: a run pointed at another teacher's targets is refused before training
    data = tiny_experiment(data={'augment': None, 'cache_dir': str(tmp_path / 'cache')},
                           train={'epochs': 1, 'max_steps_per_epoch': 1},
                           distill={'teacher': str(other), 'targets': {'offline': True, 'directory': str(directory),
                                                                       'logits_divisor': 1},
                                    'dd': {'enabled': True, 'student_logits': True, 'teacher': 'logits',
                                           'tau': 'spacing', 'mask': 'lidar_band'},
                                    'saliency': {'enabled': True}})
    with pytest.raises(ConfigError, match='stale'):
        train(experiment_from_dict(data), tmp_path / 'kd')
    # another preprocessing cache version
    manifest = json.loads((directory / MANIFEST).read_text())
    _write_json(directory / MANIFEST, dict(manifest, cache_version=manifest['cache_version'] - 1))
    with pytest.raises(ConfigError, match='preprocessing cache version'):
        _store(exp, lidar_teacher, directory)


def test_a_folder_storing_more_serves_a_run_that_reads_less(tmp_path, tiny_experiment, lidar_teacher):
    exp = _kd_experiment(tiny_experiment, lidar_teacher, tmp_path)
    directory = tmp_path / 'targets'
    full = _store(exp, lidar_teacher, directory)[0]
    model = load_checkpoint(lidar_teacher)[0]
    runner = TeacherRunner(model, exp.distill)
    plain = build_dataset(exp.data, exp.input, exp.data.train, 0, augment=False,
                          lidar_input=model.model_cfg.lidar_input)
    digest = teacher_hash(lidar_teacher)
    depth_only = expected_manifest(exp, lidar_teacher, digest, plain.reader, {'depth'}, None)
    store = open_targets(directory, depth_only, runner, plain, torch.device('cpu'), log=None)
    assert store.manifest['stored'] == ['depth', 'logits', 'saliency'] and store.frames == full.frames
    frame = plain.frame_ids[0]
    assert np.array_equal(store.load(frame)['teacher_depth'][0], full.load(frame)['teacher_depth'][0])
    # other saliency settings matter only to a run that reads the saliency map
    other = dict(expected_manifest(exp, lidar_teacher, digest, plain.reader, {'depth', 'saliency'}, runner.saliency),
                 saliency={'layer': 'decoder.stages.0', 'target': 'mean', 'normalise': 'max', 'size_divisor': 8})
    with pytest.raises(ConfigError, match='stale.*saliency'):
        open_targets(directory, other, runner, plain, torch.device('cpu'), log=None)
    # a run needing more than the folder holds is refused naming both
    manifest = json.loads((directory / MANIFEST).read_text())
    _write_json(directory / MANIFEST, dict(manifest, stored=['depth']))
    with pytest.raises(ConfigError, match=r"stale.*\['depth'\].*\['depth', 'logits', 'saliency'\]"):
        _store(exp, lidar_teacher, directory)
    # an incomplete folder is built only for the run it was made for
    _write_json(directory / MANIFEST, dict(manifest, frames={}))
    with pytest.raises(ConfigError, match='stale'):
        open_targets(directory, depth_only, runner, plain, torch.device('cpu'), log=None)


def test_offline_kd_run_end_to_end_and_the_gate(tmp_path, tiny_experiment, lidar_teacher):
    data = tiny_experiment(data={'cache_dir': str(tmp_path / 'cache')},
                           train={'epochs': 2, 'max_steps_per_epoch': 2},
                           distill={'teacher': str(lidar_teacher), 'start_epoch': 1, 'balance_every_steps': 1,
                                    'targets': {'offline': True},
                                    'dd': {'enabled': True, 'student_logits': True, 'teacher': 'logits',
                                           'tau': 'spacing', 'mask': 'lidar_band', 'grad_fraction': 0.5},
                                    'saliency': {'enabled': True, 'alpha': 'detached', 'grad_fraction': 0.25}})
    summary = train(experiment_from_dict(data), tmp_path / 'kd')
    assert summary['offline_targets'] and summary['steps'] == 4
    with open(tmp_path / 'kd' / 'logs' / 'train.csv', newline='') as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]['dd'] == '' and rows[1]['dd'] == ''        # the warm-up epoch
    for row in rows[2:]:
        assert float(row['dd']) > 0 and float(row['saliency']) >= 0 and float(row['weight_dd']) > 0
    # the first KD step sets the weights from the measured norms; later ones smooth the new value with the old
    assert float(rows[2]['grad_dd']) == pytest.approx(0.5, rel=1e-3)
    assert float(rows[2]['grad_saliency']) == pytest.approx(0.25, rel=1e-3)
    assert 0.1 < float(rows[3]['grad_dd']) < 2.5
    student = tmp_path / 'kd' / 'checkpoints' / 'final'
    record = check_gate(lidar_teacher, [student], experiment_from_dict(data).data, SplitConfig('val', '0-3'))
    assert record['pixels'] == 'held-out lidar rings' and record['teacher_rings'] == EVEN_RINGS
    assert record['passed'] == (record['gain_percent'] >= 20.0) and record['teacher_mae_mm'] > 0
    assert describe(record).startswith('Gate ')


def test_a_kd_run_never_trains_without_its_teacher(tmp_path, tiny_experiment):
    data = tiny_experiment(train={'epochs': 1, 'max_steps_per_epoch': 1},
                           distill={'teacher': str(tmp_path / 'missing'), 'dd': {'enabled': True}})
    from rcdepth_ros.errors import CheckpointError
    with pytest.raises(CheckpointError, match='missing'):
        train(experiment_from_dict(data), tmp_path / 'kd')
    assert not (tmp_path / 'kd' / 'checkpoints').exists()


def test_the_teacher_must_read_the_student_batch(tmp_path, tiny_experiment, lidar_teacher):
    data = tiny_experiment(input={'height': 64, 'width': 160}, train={'epochs': 1, 'max_steps_per_epoch': 1},
                           distill={'teacher': str(lidar_teacher), 'dd': {'enabled': True}})
    with pytest.raises(ConfigError, match=r"width.*teacher .*160|differs from the student one in \['width'\]"):
        train(experiment_from_dict(data), tmp_path / 'wide')
    lidar = copy.deepcopy(LidarInputConfig((1, 3)))
    assert lidar.enabled and lidar.channels == 2
