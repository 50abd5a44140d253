"""Export: ONNX (onnxruntime) and TorchScript reproduce the torch depth within 1e-3 m; the CLI command."""

import numpy as np
import onnxruntime
import pytest
from rcdepth_ros.cli import main
from rcdepth_ros.errors import ExportError, ModelInputError
from rcdepth_ros.models import build_model, load_model_config, save_checkpoint
from rcdepth_ros.models.export import check_onnx, check_torchscript, example_inputs, export_onnx, \
    export_torchscript, parse_size, torch_reference
from rcdepth_ros.paths import config_file
import torch


def _trained_like(model):
    """Randomise BN statistics and FiLM so the exported graph is exercised away from its init."""
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
                module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)
            if name.startswith('fusion.') and isinstance(module, torch.nn.Conv2d):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.05)
    return model.eval()


@pytest.fixture(scope='module')
def student():
    input_cfg, model_cfg = load_model_config(config_file('models/student.yaml'))
    torch.manual_seed(0)
    return _trained_like(build_model(model_cfg, input_cfg, load_pretrained=True))


def test_onnx_student_matches_torch_within_a_millimetre(student, tmp_path):
    path = export_onnx(student, tmp_path / 'student.onnx', 64, 128)
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert [i.name for i in session.get_inputs()] == ['image', 'radar']
    assert [o.name for o in session.get_outputs()] == ['depth', 'uncertainty']
    image, radar = example_inputs(student.input_cfg, 64, 128, batch=3, seed=4, radar_fraction=0.05)
    depth, uncertainty = session.run(None, {'image': image.numpy(), 'radar': radar.numpy()})
    expected_depth, expected_uncertainty = torch_reference(student, image, radar)
    assert depth.shape == (3, 1, 64, 128)      # the batch axis is dynamic
    assert np.abs(depth - expected_depth).max() <= 1e-3
    assert np.abs(uncertainty - expected_uncertainty).max() <= 1e-3
    assert float(expected_depth.std()) > 0.01   # a real comparison, not two constants
    diffs = check_onnx(student, path, 64, 128, batch=2)
    assert diffs['depth'] <= 1e-3


def test_torchscript_student_matches_torch(student, tmp_path):
    path = export_torchscript(student, tmp_path / 'student.pt', 64, 128)
    assert check_torchscript(student, path, 64, 128)['depth'] <= 1e-3


@pytest.mark.parametrize('name', ['lircdepth', 'teacher'])
def test_onnx_other_architectures(name, tmp_path):
    input_cfg, model_cfg = load_model_config(config_file(f'models/{name}.yaml'))
    torch.manual_seed(0)
    model = _trained_like(build_model(model_cfg, input_cfg, load_pretrained=False))
    path = export_onnx(model, tmp_path / f'{name}.onnx', 64, 128)
    assert check_onnx(model, path, 64, 128)['depth'] <= 1e-3


def test_check_fails_when_the_file_does_not_match(student, tmp_path):
    path = export_onnx(student, tmp_path / 'student.onnx', 64, 128)
    other = load_model_config(config_file('models/student.yaml'))
    torch.manual_seed(1)
    different = _trained_like(build_model(other[1], other[0], load_pretrained=False))
    with pytest.raises(ExportError, match='depth differs from torch'):
        check_onnx(different, path, 64, 128)
    (tmp_path / 'broken.onnx').write_bytes(b'not an onnx model')
    with pytest.raises(ExportError, match='onnxruntime cannot run'):
        check_onnx(student, tmp_path / 'broken.onnx', 64, 128)


def test_parse_size():
    assert parse_size('192x640') == (192, 640)
    for bad in ('192', '100x640', 'ax640', '0x32'):
        with pytest.raises(ModelInputError):
            parse_size(bad)


def test_export_command(tmp_path, tiny_student, capsys):
    model, input_cfg, model_cfg = tiny_student
    ckpt = save_checkpoint(tmp_path / 'tiny', _trained_like(model), input_cfg, model_cfg)
    onnx_path, ts_path = tmp_path / 'out' / 'tiny.onnx', tmp_path / 'out' / 'tiny.pt'
    assert main(['export', '--model', str(ckpt), '--onnx', str(onnx_path), '--torchscript', str(ts_path),
                 '--size', '64x128']) == 0
    assert onnx_path.is_file() and ts_path.is_file()
    captured = capsys.readouterr()
    printed = captured.out
    assert 'max |onnxruntime - torch|: depth' in printed and 'max |torchscript - torch|' in printed
    # every step says on stderr that it starts and when it is done, in order
    steps = [line for line in captured.err.splitlines() if line.endswith(' ...')]
    assert [s.split(' (')[0].removesuffix(' ...') for s in steps] == [
        'loading the checkpoint', 'exporting ONNX', 'checking the ONNX file with onnxruntime against torch',
        'exporting TorchScript', 'checking the TorchScript file against torch']
    assert captured.err.count('  done in ') == 5
    assert main(['export', '--model', str(ckpt)]) == 2
    assert main(['export', '--model', str(tmp_path / 'absent.safetensors'), '--onnx', str(onnx_path)]) == 2
    err = capsys.readouterr().err       # the file asked for is named, not a .json beside it
    assert 'absent.safetensors: checkpoint not found' in err and 'configuration not found' not in err
