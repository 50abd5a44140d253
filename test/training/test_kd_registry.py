"""The distillation-term registry, the new depth-distribution design (bins, tau, vouched pixels) and term balancing."""

import dataclasses
import math
import sys
import textwrap

import pytest
from rcdepth_ros.models import bin_centers, build_model
from rcdepth_ros.models.export import example_inputs
import torch
from training import config as training_config
from training.config import experiment_from_dict
from training.losses import registry
from training.losses.base import KDContext, TermConfig
from training.losses.xd import bin_widths, DepthDistributionTerm, lidar_band, soft_depth_log_distribution
from training.objective import teacher_info, TeacherRunner, TrainingObjective


def test_every_registered_term_declares_config_needs_and_a_section():
    fields = {f.name for f in dataclasses.fields(training_config.DistillConfig)}
    for name, cls in registry.TERMS.items():
        assert cls.name == name and issubclass(cls.Config, TermConfig) and cls.Config.term == name
        assert set(cls.needs) <= set(registry.TEACHER_OUTPUTS), name
        assert name in fields
    assert registry.term_names() == tuple(registry.TERMS)
    assert registry.teacher_needs(['dd', 'saliency']) >= {'depth', 'logits', 'saliency'}


def test_a_new_term_is_one_file_and_one_line(tmp_path, monkeypatch, tiny_experiment):
    (tmp_path / 'probe_term.py').write_text(textwrap.dedent("""
        import dataclasses
        from training.losses.base import KDTerm, TermConfig

        @dataclasses.dataclass
        class ProbeKD(TermConfig):
            term = 'probe'
            power: float = 2.0

        class ProbeTerm(KDTerm):
            name = 'probe'
            Config = ProbeKD
            needs = frozenset({'depth'})

            def forward(self, context):
                diff = context.student['depth'].float() - context.teacher['depth'].float()
                return diff.abs().pow(self.cfg.power).mean()
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    lines = registry.TERM_CLASSES + ('probe_term.ProbeTerm',)          # the one line
    monkeypatch.setattr(registry, 'TERMS', {c.name: c for c in map(registry._load, lines)})
    monkeypatch.setattr(training_config, 'TERMS', registry.TERMS)
    monkeypatch.setattr(training_config, 'DistillConfig', training_config._distill_config_class())
    data = tiny_experiment()
    data['distill'] = {'teacher': 'unused', 'probe': {'enabled': True, 'power': 1.0}}
    exp = experiment_from_dict(data)
    assert exp.distill.enabled_terms() == ['probe'] and exp.distill.probe.power == 1.0
    student = build_model(exp.model, exp.input)
    objective = TrainingObjective(student, exp)
    image, radar = example_inputs(exp.input, exp.input.height, exp.input.width, batch=2, seed=0)
    teacher = {'depth': torch.full((2, 1, exp.input.height, exp.input.width), 30.0)}
    sparse = torch.zeros(2, 1, exp.input.height, exp.input.width)
    _, terms, out = objective(image, radar, sparse, sparse, torch.tensor([False, False]), teacher)
    assert terms['probe'] == pytest.approx(float((out['depth'].detach() - 30.0).abs().mean()), rel=1e-5)
    sys.modules.pop('probe_term', None)


def test_lidar_band_by_hand():
    mask = torch.zeros(1, 1, 6, 3, dtype=torch.bool)
    mask[0, 0, 1, 0] = mask[0, 0, 4, 0] = True        # column 0: rows 1 and 4
    mask[0, 0, 2, 1] = True                           # column 1: row 2 only; column 2: nothing
    band = lidar_band(mask)[0, 0]
    assert band[:, 0].tolist() == [False, True, True, True, True, False]
    assert band[:, 1].tolist() == [False, False, True, False, False, False]
    assert not band[:, 2].any()
    assert lidar_band(mask, margin=1)[0, 0, :, 1].tolist() == [False, True, True, True, False, False]


def _entropy(depth, centers, tau):
    log_p = soft_depth_log_distribution(torch.tensor([[[[depth]]]]), centers, tau)
    return float(-(log_p.exp() * log_p).sum())


def test_tau_matched_to_the_bin_spacing_keeps_the_distribution_alike_near_and_far():
    centers = bin_centers(64, 'sid', 0.5, 100.0)
    widths = bin_widths(64, 'sid', 0.5, 100.0)
    assert torch.allclose(widths.sum(), torch.tensor(99.5))
    near, far = float(centers[3]), float(centers[55])
    # a fixed tau of 1 m: spread over many narrow bins near, one-hot among the wide bins far
    assert _entropy(near, centers, 1.0) > 4 * _entropy(far, centers, 1.0)
    # tau = bin width: about the same spread at both depths
    assert _entropy(far, centers, widths) == pytest.approx(_entropy(near, centers, widths), rel=0.25)
    # and the same spread whether the depth sits on a centre or between two
    between = 0.5 * float(centers[55] + centers[56])
    assert _entropy(between, centers, widths) == pytest.approx(_entropy(far, centers, widths), rel=0.5)


def _dd_term(tiny_experiment, **cfg):
    data = tiny_experiment()
    data['distill'] = {'teacher': 'unused', 'dd': {'enabled': True, **cfg}}
    exp = experiment_from_dict(data)
    student = build_model(exp.model, exp.input)
    return exp, student, DepthDistributionTerm(exp.distill.dd, student, teacher_info(student), exp)


def test_dd_on_bin_logits_is_zero_for_equal_logits_and_counts_only_vouched_pixels(tiny_experiment):
    exp, student, term = _dd_term(tiny_experiment, student_logits=True, teacher='logits', tau='spacing',
                                  mask='lidar_band')
    assert term.teacher_logits
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 16, 4, 2, generator=gen)
    gt = torch.zeros(1, 1, 4, 2)
    gt[0, 0, 1, 0] = gt[0, 0, 2, 0] = 10.0             # the band: rows 1-2 of column 0
    student_out = {'logits': logits, 'depth': torch.ones(1, 1, 4, 2)}
    same = KDContext(student_out, {'logits': logits, 'depth': torch.ones(1, 1, 4, 2)}, gt, gt > 0)
    assert float(term(same)) == pytest.approx(0.0, abs=1e-6)
    other = logits.clone()
    other[..., 1] = torch.randn(1, 16, 4, generator=gen)   # column 1 (outside the band) differs: still 0
    outside = KDContext(student_out, {'logits': other, 'depth': torch.ones(1, 1, 4, 2)}, gt, gt > 0)
    assert float(term(outside)) == pytest.approx(0.0, abs=1e-6)
    inside = other.clone()
    inside[0, :, 1, 0] = torch.randn(16, generator=gen)
    value = float(term(KDContext(student_out, {'logits': inside, 'depth': torch.ones(1, 1, 4, 2)}, gt, gt > 0)))
    p_t = torch.softmax(inside[0, :, 1, 0], 0)
    kl = float((p_t * (p_t.log() - torch.log_softmax(logits[0, :, 1, 0], 0))).sum())
    assert value == pytest.approx(kl / 2, rel=1e-4)           # the mean over the two vouched pixels


def test_dd_refuses_teacher_logits_from_other_bins(tiny_experiment, tiny_teacher_model):
    from rcdepth_ros.errors import ConfigError
    exp, student, _ = _dd_term(tiny_experiment, student_logits=True, teacher='auto')
    teacher = build_model(experiment_from_dict(tiny_experiment(model=tiny_teacher_model)).model, exp.input)
    with pytest.raises(ConfigError, match='logits needs a teacher bin head'):
        DepthDistributionTerm(dataclasses.replace(exp.distill.dd, teacher='logits'), student, teacher_info(teacher),
                              exp)
    auto = DepthDistributionTerm(exp.distill.dd, student, teacher_info(teacher), exp)
    assert not auto.teacher_logits                             # a sigmoid teacher: its depth makes p_T


def test_grad_fraction_sets_the_term_gradient_to_that_share_of_the_supervised_one(tiny_experiment):
    data = tiny_experiment()
    data['distill'] = {'teacher': 'unused', 'dd': {'enabled': True, 'grad_fraction': 0.5}}
    exp = experiment_from_dict(data)
    torch.manual_seed(0)
    student = build_model(exp.model, exp.input)
    torch.manual_seed(1)
    teacher = TeacherRunner(build_model(exp.model, exp.input), exp.distill)
    objective = TrainingObjective(student, exp, teacher_info(teacher.model))
    image, radar = example_inputs(exp.input, exp.input.height, exp.input.width, batch=2, seed=0)
    sparse = torch.rand(2, 1, exp.input.height, exp.input.width) * 50 * (torch.rand(2, 1, 64, 128) < 0.1)
    objective(image, radar, sparse, sparse, torch.tensor([False, False]), teacher(image, radar))
    assert objective.needs_calibration()
    norms = objective.gradient_norms()
    ratios = objective.balance(norms)
    assert not objective.needs_calibration() and ratios['dd'] == pytest.approx(0.5)
    # measured directly: the weighted term's gradient is half the supervised one's
    params = list(student.parameters())
    weighted = objective.kd_weights[0] * objective.last_raw['dd']
    g_term = torch.autograd.grad(weighted, params, retain_graph=True, allow_unused=True)
    g_sup = torch.autograd.grad(objective.last_raw['supervised'], params, retain_graph=True, allow_unused=True)
    norm = lambda gs: math.sqrt(sum(float(g.pow(2).sum()) for g in gs if g is not None))  # noqa: E731
    assert norm(g_term) / norm(g_sup) == pytest.approx(0.5, rel=1e-4)
    total = objective.recombine(1.0)
    expected = float((objective.last_raw['supervised'] + weighted).detach())
    assert float(total.detach()) == pytest.approx(expected, rel=1e-6)
