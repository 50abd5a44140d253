"""Loop parts: the lr schedule, the atomic resume state, RNG capture, the data order, CSV trimming, precision."""

from pathlib import Path
import random

import numpy as np
import pytest
from rcdepth_ros.errors import CheckpointError, ConfigError, DatasetError
import torch
from training.config import TrainConfig
from training.loop.data import EpochBatchOrder, sequential_batches
from training.loop.distributed import state_digest
from training.loop.logs import CsvLog
from training.loop.optim import build_optimizer, build_scheduler
from training.loop.state import atomic_torch_save, capture_rng, load_state, restore_rng, STATE_VERSION
from training.loop.trainer import best_score, resolve_precision


def test_polynomial_decay_to_a_tenth():
    params = [torch.nn.Parameter(torch.zeros(2))]
    cfg = TrainConfig(lr=1e-3, end_lr_factor=0.1, poly_power=0.9)
    optimizer = build_optimizer(params, cfg)
    scheduler = build_scheduler(optimizer, cfg, total_steps=10)
    rates = [scheduler.get_last_lr()[0]]
    for _ in range(12):
        optimizer.step()
        scheduler.step()
        rates.append(scheduler.get_last_lr()[0])
    assert rates[0] == pytest.approx(1e-3)
    assert rates[5] == pytest.approx(0.9e-3 * 0.5 ** 0.9 + 1e-4)    # (base - end)(1 - 5/10)^0.9 + end
    assert rates[10] == pytest.approx(1e-4) and rates[12] == pytest.approx(1e-4)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    state = scheduler.state_dict()
    assert all(isinstance(v, (int, float, list, bool, type(None))) for v in state.values())


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / 'state' / 'last.pt'
    atomic_torch_save({'version': STATE_VERSION, 'value': torch.tensor([1.0])}, path)

    def crash(obj, handle):
        handle.write(b'half a file')
        raise KeyboardInterrupt('killed while writing')

    monkeypatch.setattr(torch, 'save', crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({'version': STATE_VERSION, 'value': torch.tensor([2.0])}, path)
    monkeypatch.undo()
    assert float(load_state(path)['value']) == 1.0
    assert sorted(p.name for p in path.parent.iterdir()) == ['last.pt']     # no temporary left behind


def test_load_state_refuses_bad_files_and_pickled_code(tmp_path):
    with pytest.raises(CheckpointError, match='not found'):
        load_state(tmp_path / 'none.pt')
    (tmp_path / 'junk.pt').write_bytes(b'not a torch file')
    with pytest.raises(CheckpointError, match='unreadable'):
        load_state(tmp_path / 'junk.pt')
    torch.save({'version': STATE_VERSION, 'thing': Path('x')}, tmp_path / 'code.pt')    # an object: not weights-only
    with pytest.raises(CheckpointError, match='unreadable'):
        load_state(tmp_path / 'code.pt')
    torch.save({'version': 99}, tmp_path / 'old.pt')
    with pytest.raises(CheckpointError, match='version'):
        load_state(tmp_path / 'old.pt')


def test_rng_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    atomic_torch_save({'version': STATE_VERSION, 'rng': capture_rng()}, tmp_path / 's.pt')
    expected = (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    restore_rng(load_state(tmp_path / 's.pt')['rng'])
    assert (random.random(), np.random.rand(3).tolist(), torch.rand(3).tolist()) == expected


def test_batch_order_is_a_function_of_seed_and_epoch():
    order = EpochBatchOrder(10, 3, seed=5)
    assert order.steps_per_epoch == 3                       # 10 // 3, the incomplete batch dropped
    first = order.batches(0)
    assert first == EpochBatchOrder(10, 3, seed=5).batches(0)
    assert first != order.batches(1) and first != EpochBatchOrder(10, 3, seed=6).batches(0)
    assert order.batches(0, start_step=2) == first[2:]
    flat = [i for b in first for i in b]
    assert len(set(flat)) == 9 and all(0 <= i < 10 for i in flat)
    assert EpochBatchOrder(10, 3, seed=5, max_steps=2).steps_per_epoch == 2


def test_batch_order_shards_ranks_disjointly():
    ranks = [EpochBatchOrder(20, 2, seed=1, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].steps_per_epoch == 5
    a, b = ([i for batch in r.batches(3) for i in batch] for r in ranks)
    assert not set(a) & set(b) and len(a) == len(b) == 10
    single = EpochBatchOrder(20, 4, seed=1).batches(3)
    assert sorted(a + b) == sorted(i for batch in single for i in batch)     # same frames as one rank, batch 4
    with pytest.raises(DatasetError, match='fewer than one step'):
        EpochBatchOrder(3, 2, seed=1, world_size=2)


def test_sequential_batches():
    assert sequential_batches(5, 2) == [[0, 1], [2, 3], [4]]
    assert sequential_batches(5, 2, limit=3) == [[0, 1], [2]]


def test_csv_log_trims_rows_after_the_resumed_step(tmp_path):
    log = CsvLog(tmp_path / 'train.csv', ['step', 'loss'])
    for step in range(1, 6):
        log.write({'step': step, 'loss': step * 0.5})
    resumed = CsvLog(tmp_path / 'train.csv', ['step', 'loss'], keep_through=3)
    resumed.write({'step': 4, 'loss': 9.0})
    assert [(r['step'], r['loss']) for r in resumed.rows()] == [('1', '0.5'), ('2', '1.0'), ('3', '1.5'), ('4', '9.0')]
    assert CsvLog(tmp_path / 'train.csv', ['step', 'loss']).rows() == []    # a fresh start truncates


def test_precision_choices_on_the_cpu():
    cpu = torch.device('cpu')
    assert resolve_precision('auto', cpu) == (None, False)
    assert resolve_precision('off', cpu) == (None, False)
    assert resolve_precision('bf16', cpu) == (torch.bfloat16, False)
    with pytest.raises(ConfigError, match='fp16'):
        resolve_precision('fp16', cpu)


def test_best_score_direction():
    class Result:
        caps = {'80': {'mae': 1200.0, 'delta1': 0.9}}
    assert best_score(Result, 'mae', 80.0) == 1200.0
    assert best_score(Result, 'delta1', 80.0) == -0.9
    assert best_score(Result, 'mae', 50.0) is None


def test_state_digest_sees_every_byte():
    module = torch.nn.Linear(3, 2)
    before = state_digest(module)
    with torch.no_grad():
        module.bias[0] = torch.nextafter(module.bias[0], torch.tensor(10.0))
    assert state_digest(module) != before
    assert state_digest(torch.nn.BatchNorm2d(2)) == state_digest(torch.nn.BatchNorm2d(2))
