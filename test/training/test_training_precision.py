"""GPU-correct training on the CPU: no loss op that CUDA autocast refuses, every loss in float32, for every config."""

import copy

import pytest
from rcdepth_ros.models import build_model
from rcdepth_ros.models.export import example_inputs
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from training.config import experiment_from_dict
from training.objective import teacher_info, TeacherRunner, TrainingObjective

# Ops CUDA autocast raises on ("unsafe to autocast"): the first teacher step on a GPU failed on this one.
REFUSED_BY_CUDA_AUTOCAST = {'aten::binary_cross_entropy', 'aten::binary_cross_entropy_backward'}
ALL_TERMS = ('dd', 'saliency', 'feature', 'pairwise', 'inter_depth', 'fsnet', 'confidence', 'crkd')


class OpRecorder(TorchDispatchMode):
    """Record the name of every aten op that runs (after autocast chose its precision)."""

    def __init__(self):
        super().__init__()
        self.ops = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.add(func._schema.name)
        return func(*args, **(kwargs or {}))


def _batch(input_cfg):
    image, radar = example_inputs(input_cfg, input_cfg.height, input_cfg.width, batch=2, seed=0)
    gen = torch.Generator().manual_seed(0)
    sparse = torch.rand(2, 1, input_cfg.height, input_cfg.width, generator=gen) * 60
    sparse = sparse * (torch.rand(sparse.shape, generator=gen) < 0.1)
    return image, radar, sparse, torch.zeros_like(sparse), torch.tensor([False, False])


def _run_step(exp, teacher_model=None):
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    teacher = TeacherRunner(teacher_model, exp.distill) if teacher_model is not None else None
    objective = TrainingObjective(student, exp, teacher_info(teacher_model) if teacher_model is not None else None)
    image, radar, sparse, dense, has_dense = _batch(exp.input)
    kwargs = {}
    if exp.model.lidar_input.enabled:
        channels = [sparse[:, 0] / 100.0, (sparse[:, 0] > 0).float()] * (exp.model.lidar_input.channels // 2)
        kwargs['lidar'] = torch.stack(channels, dim=1)
    with OpRecorder() as recorder, torch.autocast('cpu', dtype=torch.bfloat16):
        teacher_out = teacher(image, radar) if teacher is not None else None
        loss, terms, out = objective(image, radar, sparse, dense, has_dense, teacher_out, **kwargs)
        loss.backward()
    return recorder.ops, loss, objective


@pytest.mark.parametrize('kind', ['student', 'teacher', 'lircdepth', 'lidar_teacher', 'lidar_prior_teacher'])
def test_every_architecture_trains_with_autocast_safe_fp32_losses(kind, tiny_experiment, tiny_teacher_model):
    data = tiny_experiment(train={'amp': 'bf16'})
    if kind == 'teacher':
        data['model'] = tiny_teacher_model
        data['loss'] = {'radar_branch_weight': 0.5}         # the stage-1 BCE that failed on CUDA
    elif kind == 'lircdepth':
        data['model'] = {'architecture': 'lircdepth',
                         'image_encoder': {'name': 'small_cnn', 'widths': [8, 8, 8, 8, 8]},
                         'radar_encoder': {'name': 'small_cnn', 'widths': [8, 8, 8, 8, 8]},
                         'fusion': {'kind': 'add'}, 'head': {'kind': 'sigmoid'},
                         'decoder': {'kind': 'transposed_ir', 'widths': [16, 16, 8, 8, 8], 'expansion': 2}}
    elif kind == 'lidar_teacher':
        data['model'] = dict(data['model'], lidar_input={'rings': [0, 2, 4]})
    elif kind == 'lidar_prior_teacher':
        data['model'] = dict(data['model'], lidar_input={'rings': [0, 2, 4], 'prior': True})
    ops, loss, objective = _run_step(experiment_from_dict(data))
    assert not ops & REFUSED_BY_CUDA_AUTOCAST, sorted(ops & REFUSED_BY_CUDA_AUTOCAST)
    assert loss.dtype == torch.float32
    assert all(v.dtype == torch.float32 for v in objective.last_raw.values())


def test_every_distillation_term_is_autocast_safe(tiny_experiment, tiny_teacher_model):
    data = tiny_experiment(train={'amp': 'bf16'})
    data['distill'] = {'teacher': 'unused', **{t: {'enabled': True} for t in ALL_TERMS}}
    exp = experiment_from_dict(data)
    teacher_model = build_model(experiment_from_dict(tiny_experiment(model=tiny_teacher_model)).model, exp.input)
    ops, loss, objective = _run_step(exp, copy.deepcopy(teacher_model))
    assert not ops & REFUSED_BY_CUDA_AUTOCAST
    assert set(objective.last_raw) == {'supervised', *ALL_TERMS}
    assert all(v.dtype == torch.float32 and torch.isfinite(v) for v in objective.last_raw.values())


def test_the_recorder_sees_the_refused_op():
    # the check above can fail: the probability-form BCE under autocast is recorded
    x = torch.rand(4, requires_grad=True)
    with OpRecorder() as recorder, torch.autocast('cpu', dtype=torch.bfloat16):
        torch.nn.functional.binary_cross_entropy(x.clamp(1e-3, 1 - 1e-3), torch.rand(4)).backward()
    assert 'aten::binary_cross_entropy' in recorder.ops
