"""
The distillation gate: the teacher must know more than the student it is to teach.

``python -m training.gate --teacher RUN_OR_CHECKPOINT --student RUN_OR_CHECKPOINT [--student ...] [--split dev]``

A cross-modal teacher reads some lidar rings (``model.lidar_input``), so it is scored where it saw nothing: the
held-out rings of the dev frames (``depth_gt_heldout``, at model resolution, unaugmented), and every student on the
same pixels (a student reads no lidar; it is scored exactly like the teacher, so the comparison is fair). A teacher
without lidar input is scored with its students on all rings. The gate passes when the teacher's MAE at ``cap`` is
at least ``min_gain_percent`` lower than the students' mean. The table (``training.run_table``) checks it before
its distillation rows and reports it.
"""

import argparse
import json
from pathlib import Path
import statistics
import sys

from rcdepth_ros.config import load_yaml
from rcdepth_ros.core.inference.engine import resolve_device
from rcdepth_ros.errors import RcdepthError
from rcdepth_ros.evaluation.metrics import cap_key
from rcdepth_ros.models import load_checkpoint
import torch
from training.config import experiment_from_dict, load_with_bases, SplitConfig
from training.evaluate import resolve_model
from training.loop.data import build_dataset, make_loader, sequential_batches
from training.loop.validate import validate


def score(checkpoint, data_cfg, split_cfg, lidar_input=None, device='cpu', caps=(50.0, 70.0, 80.0),
          batch_size=4):
    """Return the MetricsResult of a checkpoint on the held-out rings of ``lidar_input`` (all rings when None)."""
    model, input_cfg, _, _ = load_checkpoint(checkpoint, map_location=device)
    rings = lidar_input.rings if lidar_input is not None and lidar_input.enabled else ()
    lidar = lidar_input if rings else None
    dataset = build_dataset(data_cfg, input_cfg, split_cfg, 0, augment=False, lidar_input=lidar)
    loader = make_loader(dataset, sequential_batches(len(dataset), batch_size))
    result, _ = validate(model, loader, torch.device(device), channels_last=False, caps=caps,
                         gt_key='depth_gt_heldout' if rings else 'depth_gt')
    return result


def check_gate(teacher, students, data_cfg, split_cfg, min_gain_percent=20.0, cap=80.0, device='cpu'):
    """Return the gate record: teacher and student MAE (mm) at ``cap`` on the same pixels, the gain, passed."""
    _, _, teacher_cfg, _ = load_checkpoint(teacher)
    lidar = teacher_cfg.lidar_input
    rings = tuple(lidar.rings)
    key = cap_key(cap)
    teacher_mae = score(teacher, data_cfg, split_cfg, lidar, device).caps[key]['mae']
    student_maes = [score(s, data_cfg, split_cfg, lidar, device).caps[key]['mae'] for s in students]
    mean = statistics.mean(student_maes)
    gain = 100.0 * (mean - teacher_mae) / mean
    return {'teacher': str(teacher), 'students': [str(s) for s in students], 'split': split_cfg.split,
            'frames': split_cfg.frames, 'pixels': 'held-out lidar rings' if rings else 'all lidar rings',
            'teacher_rings': list(rings), 'cap_m': cap, 'teacher_mae_mm': teacher_mae,
            'student_mae_mm': student_maes, 'student_mean_mae_mm': mean, 'gain_percent': gain,
            'min_gain_percent': min_gain_percent, 'passed': gain >= min_gain_percent}


def describe(record):
    """Return the one-line account of a gate record."""
    verdict = 'passed' if record['passed'] else 'NOT passed'
    return (f'Gate {verdict}: teacher MAE@{record["cap_m"]:g} {record["teacher_mae_mm"]:.0f} mm vs direct student '
            f'{record["student_mean_mae_mm"]:.0f} mm ({len(record["students"])} run(s)) on {record["pixels"]} of '
            f'the {record["split"] or record["frames"]} frames: {record["gain_percent"]:.1f} % better (needs '
            f'>= {record["min_gain_percent"]:g} %)')


def data_config_of(path):
    """Return the DataConfig of an experiment YAML or of a run directory's ``config.yaml`` (provenance dropped)."""
    path = Path(path)
    if path.is_dir():
        data = load_yaml(path / 'config.yaml')
        data.pop('provenance', None)
        return experiment_from_dict(data, str(path / 'config.yaml')).data
    return experiment_from_dict(load_with_bases(path), str(path)).data


def main(argv=None):
    """Run the command; return the exit status (0 passed, 1 not passed, 2 error)."""
    parser = argparse.ArgumentParser(prog='python -m training.gate', description=__doc__.strip().splitlines()[0])
    parser.add_argument('--teacher', required=True, help='teacher run directory or checkpoint')
    parser.add_argument('--student', action='append', required=True, help='direct student run or checkpoint')
    parser.add_argument('--config', default=None,
                        help="experiment YAML whose data section to use (default: the teacher run's config.yaml)")
    parser.add_argument('--split', default='dev', help='split of the data source to score on')
    parser.add_argument('--frames', default=None, help='frame selection within the split')
    parser.add_argument('--min-gain', type=float, default=20.0, help='required gain in percent')
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)
    try:
        data_cfg = data_config_of(args.config or args.teacher)
        record = check_gate(resolve_model(args.teacher), [resolve_model(s) for s in args.student], data_cfg,
                            SplitConfig(args.split, args.frames), args.min_gain,
                            device=str(resolve_device(args.device)))
    except RcdepthError as exc:
        print(f'training.gate: error: {exc}', file=sys.stderr)
        return 2
    print(json.dumps(record, indent=2))
    print(describe(record), file=sys.stderr)
    return 0 if record['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
