"""Parameter and MAC counting, latency measurement, and ``rcdepth info``."""

import json

import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.models.complexity import count_macs, count_parameters, measure_latency, median
from rcdepth_ros.models.export import example_inputs
from rcdepth_ros.paths import config_file
import torch
from torch import nn


class Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)                  # 8*8*16 outputs x 3*9
        self.bn = nn.BatchNorm2d(8)                                             # 1 per output element
        self.depthwise = nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8)      # 8*4*8 outputs x 1*9
        self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)                          # 8*4*8 inputs x 4*4
        self.fc = nn.Linear(4, 10)                                               # 10 outputs x 4

    def forward(self, x, unused=None):
        x = self.up(self.depthwise(self.bn(self.conv(x))))
        return self.fc(x.mean(dim=(2, 3)))


def test_macs_of_each_layer_kind():
    total, per_module = count_macs(Toy(), torch.zeros(1, 3, 8, 16))
    expected = {'conv': 8 * 8 * 16 * 27, 'bn': 8 * 8 * 16, 'depthwise': 8 * 4 * 8 * 9, 'up': 8 * 4 * 8 * 16,
                'fc': 10 * 4}
    assert dict(per_module) == expected
    assert total == sum(expected.values())
    # twice the batch, twice the MACs
    assert count_macs(Toy(), torch.zeros(2, 3, 8, 16))[0] == 2 * total


def test_parameter_counts_per_module():
    counts = count_parameters(Toy())
    assert counts['conv'] == 8 * 27 and counts['bn'] == 16 and counts['fc'] == 50
    assert counts['total'] == sum(p.numel() for p in Toy().parameters())
    assert counts['total'] == sum(v for k, v in counts.items() if k != 'total')


def test_measure_latency_counts_runs():
    calls = []
    times = measure_latency(lambda: calls.append(1), runs=5, warmup=2)
    assert len(times) == 5 and len(calls) == 7 and all(t >= 0 for t in times)
    assert median([3.0, 1.0, 2.0]) == 2.0


def test_info_command_table_and_json(capsys, tmp_path, tiny_student):
    assert main(['info', '--model', str(config_file('models/lircdepth.yaml')), '--size', '64x128',
                 '--runs', '2']) == 0
    table = capsys.readouterr().out
    assert 'architecture: lircdepth' in table and '12,645,228' in table and 'latency:' in table
    from rcdepth_ros.models import save_checkpoint
    model, input_cfg, model_cfg = tiny_student
    ckpt = save_checkpoint(tmp_path / 'tiny', model, input_cfg, model_cfg)
    assert main(['info', '--model', str(ckpt), '--runs', '0', '--json', '--depth', '2']) == 0
    info = json.loads(capsys.readouterr().out)
    assert info['size'] == [64, 128] and 'latency_ms' not in info
    assert info['parameters']['total'] == sum(p.numel() for p in model.parameters())
    image, radar = example_inputs(input_cfg, 64, 128)
    assert info['total_macs'] == count_macs(model, image, radar)[0]
    assert any(name.startswith('decoder.') for name in info['macs'])
    assert main(['info', '--model', str(tmp_path / 'nothing.yaml')]) == 2
    for option, value in (('--runs', '-1'), ('--depth', '0')):          # refused when parsed, before any work
        with pytest.raises(SystemExit) as exit_info:
            main(['info', '--model', str(ckpt), option, value])
        assert exit_info.value.code == 2
        assert f'argument {option}: must be >= ' in capsys.readouterr().err
