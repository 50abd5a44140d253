"""The training objective: every term wired to real models, zero against an identical teacher, gradients."""

import copy

import pytest
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models import build_model
from rcdepth_ros.models.export import example_inputs
import torch
from training.config import experiment_from_dict
from training.objective import teacher_info, TeacherRunner, TrainingObjective

ALL_TERMS = ('dd', 'saliency', 'feature', 'pairwise', 'inter_depth', 'fsnet', 'confidence', 'crkd')


def _experiment(tiny_experiment, terms, model=None, **distill):
    data = tiny_experiment()
    if model is not None:
        data['model'] = model
    data['distill'] = {'teacher': 'unused' if terms else None, **{t: {'enabled': True} for t in terms}, **distill}
    return experiment_from_dict(data)


def _batch(input_cfg, seed=0):
    image, radar = example_inputs(input_cfg, input_cfg.height, input_cfg.width, batch=2, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    sparse = torch.rand(2, 1, input_cfg.height, input_cfg.width, generator=gen) * 60
    sparse = sparse * (torch.rand(sparse.shape, generator=gen) < 0.1)
    dense = torch.rand(2, 1, input_cfg.height, input_cfg.width, generator=gen) * 60 + 1
    return image, radar, sparse, dense, torch.tensor([True, False])


def test_identical_teacher_gives_zero_for_output_and_feature_terms(tiny_experiment):
    exp = _experiment(tiny_experiment, ['dd', 'saliency', 'pairwise', 'inter_depth', 'crkd'])
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    teacher = TeacherRunner(copy.deepcopy(student), exp.distill)
    objective = TrainingObjective(student, exp, teacher_info(teacher.model)).eval()   # BN as in the teacher
    image, radar, sparse, dense, has_dense = _batch(exp.input)
    _, terms, _ = objective(image, radar, sparse, dense, has_dense, teacher(image, radar))
    for name in ('dd', 'saliency', 'pairwise', 'inter_depth', 'crkd'):
        assert terms[name] == pytest.approx(0.0, abs=1e-5), name
    assert terms['supervised'] > 0


def test_every_term_trains_the_student_and_never_the_teacher(tiny_experiment, tiny_teacher_model):
    exp = _experiment(tiny_experiment, list(ALL_TERMS))
    teacher_model = build_model(experiment_from_dict(tiny_experiment(model=tiny_teacher_model)).model, exp.input)
    teacher = TeacherRunner(teacher_model, exp.distill)
    before = copy.deepcopy(teacher_model.state_dict())
    student = build_model(exp.model, exp.input)
    objective = TrainingObjective(student, exp, teacher_info(teacher_model))
    assert list(objective.kd) == list(ALL_TERMS)          # registry order
    training_only = {n.split('.')[0] + '.' + n.split('.')[1] for n, _ in objective.kd.named_parameters()}
    assert training_only == {'feature.adapters', 'confidence.head'}
    image, radar, sparse, dense, has_dense = _batch(exp.input)
    teacher_out = teacher(image, radar)
    assert teacher_out['saliency'].shape == (2, 1, exp.input.height // 8, exp.input.width // 8)
    assert not teacher_out['saliency'].requires_grad
    loss, terms, out = objective(image, radar, sparse, dense, has_dense, teacher_out)
    assert set(terms) == {'supervised', *ALL_TERMS}
    assert all(torch.isfinite(torch.tensor(v)) for v in terms.values())
    loss.backward()
    named = dict(objective.named_parameters())
    for prefix in ('student.image_encoder', 'student.radar_encoder', 'student.decoder', 'student.head',
                   'kd.feature.adapters.image', 'kd.feature.adapters.radar', 'kd.confidence.head'):
        grads = [p.grad for n, p in named.items() if n.startswith(prefix)]
        assert grads and any(g is not None and float(g.abs().sum()) > 0 for g in grads), prefix
    assert all(p.grad is None for p in teacher_model.parameters())
    after = teacher_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize('term', ALL_TERMS)
def test_each_term_alone_changes_the_gradient(tiny_experiment, tiny_teacher_model, term):
    exp = _experiment(tiny_experiment, [term])
    teacher_model = build_model(experiment_from_dict(tiny_experiment(model=tiny_teacher_model)).model, exp.input)
    teacher = TeacherRunner(teacher_model, exp.distill)
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    objective = TrainingObjective(student, exp, teacher_info(teacher_model))
    image, radar, sparse, dense, has_dense = _batch(exp.input)
    teacher_out = teacher(image, radar)

    def head_grad(active):
        objective.zero_grad(set_to_none=True)
        loss, terms, _ = objective(image, radar, sparse, dense, has_dense, teacher_out, distill_active=active)
        loss.backward()
        return torch.cat([p.grad.flatten() for p in student.parameters() if p.grad is not None]), terms

    plain, plain_terms = head_grad(False)
    with_term, terms = head_grad(True)
    assert set(plain_terms) == {'supervised'} and term in terms
    assert not torch.allclose(plain, with_term), f'{term} does not reach the student'


def test_weights_scale_the_terms(tiny_experiment, tiny_teacher_model):
    exp1 = _experiment(tiny_experiment, ['dd'], dd={'enabled': True, 'weight': 1.0})
    exp3 = _experiment(tiny_experiment, ['dd'], dd={'enabled': True, 'weight': 3.0})
    teacher_model = build_model(experiment_from_dict(tiny_experiment(model=tiny_teacher_model)).model, exp1.input)
    torch.manual_seed(0)
    student = build_model(exp1.model, exp1.input)
    image, radar, sparse, dense, has_dense = _batch(exp1.input)
    teacher_out = TeacherRunner(teacher_model, exp1.distill)(image, radar)
    loss1, terms1, _ = TrainingObjective(student, exp1)(image, radar, sparse, dense, has_dense, teacher_out)
    loss3, terms3, _ = TrainingObjective(student, exp3)(image, radar, sparse, dense, has_dense, teacher_out)
    assert float((loss3 - loss1).detach()) == pytest.approx(2.0 * terms1['dd'], rel=1e-4)


def test_student_logits_variant_uses_the_student_bins(tiny_experiment):
    exp = _experiment(tiny_experiment, ['dd'], dd={'enabled': True, 'student_logits': True, 'tau': 1.0})
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    teacher = TeacherRunner(copy.deepcopy(student), exp.distill)
    image, radar, sparse, dense, has_dense = _batch(exp.input)
    _, terms, _ = TrainingObjective(student, exp).eval()(image, radar, sparse, dense, has_dense, teacher(image, radar))
    assert terms['dd'] > 0    # the student's softmax is not the teacher's -|d - c| distribution, but finite


def test_configuration_errors(tiny_experiment, tiny_teacher_model):
    sigmoid_student = dict(tiny_experiment()['model'], head={'kind': 'sigmoid'})
    exp = _experiment(tiny_experiment, ['fsnet'], model=sigmoid_student)
    with pytest.raises(ConfigError, match='bin head'):
        TrainingObjective(build_model(exp.model, exp.input), exp, {})
    camera = dict(tiny_experiment()['model'], fusion={'kind': 'none'})
    exp = _experiment(tiny_experiment, ['feature'], model=camera, feature={'enabled': True, 'branches': ['radar']})
    with pytest.raises(ConfigError, match='neither branch'):
        TrainingObjective(build_model(exp.model, exp.input), exp, {'radar': [4, 8, 8, 16, 16]})
