"""Model configuration schema: the shipped YAMLs, strictness, and architecture / section consistency."""

import copy

import pytest
from rcdepth_ros.config import InputConfig
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models import load_model_config, ModelConfig
from rcdepth_ros.paths import config_file

MODEL_YAMLS = ['student', 'student_camera', 'student_mobilenetv2', 'lircdepth', 'teacher', 'teacher_resnet34']


@pytest.mark.parametrize('name', MODEL_YAMLS)
def test_shipped_configs_load(name):
    input_cfg, model_cfg = load_model_config(config_file(f'models/{name}.yaml'))
    assert isinstance(input_cfg, InputConfig) and isinstance(model_cfg, ModelConfig)
    assert model_cfg.architecture in ('student', 'lircdepth', 'teacher')


def test_experiment_dict_with_extra_sections():
    data = {'input': {'height': 64, 'width': 128}, 'model': {'architecture': 'student'},
            'data': {'source': 'astyx'}, 'train': {'epochs': 3}}
    input_cfg, model_cfg = load_model_config(data)
    assert (input_cfg.height, input_cfg.width) == (64, 128)
    assert model_cfg.image_encoder.name == 'efficientnet_lite0' and model_cfg.image_encoder.pretrained is True
    assert model_cfg.head.kind == 'bins' and model_cfg.fusion.film_mode == 'pixel'


def test_missing_input_section_means_defaults():
    input_cfg, _ = load_model_config({'model': {}})
    assert input_cfg == InputConfig()


@pytest.mark.parametrize('mutate, fragment', [
    (lambda d: d['model'].update(typo=1), "unknown key(s) ['typo']"),
    (lambda d: d['model']['decoder'].update(widht=[1]), "unknown key(s) ['widht']"),
    (lambda d: d['input'].update(heigth=64), "unknown key(s) ['heigth']"),
    (lambda d: d['model'].update(architecture='unet'), 'model.architecture'),
    (lambda d: d['model']['decoder'].update(kind='bts'), "decoder.kind must be 'pw_daspp'"),
    (lambda d: d['model']['fusion'].update(kind='gated'), 'fusion.kind must be one of'),
    (lambda d: d['model']['head'].update(spacing='cubic'), 'head.spacing'),
    (lambda d: d['model']['head'].update(min_depth=200.0), 'min_depth < max_depth'),
    (lambda d: d['model']['decoder'].update(widths=[8, 8, 8]), 'decoder.widths needs 5 values'),
    (lambda d: d['model']['decoder'].update(daspp_scale=4), 'decoder.daspp_scale'),
    (lambda d: d['model']['image_encoder'].update(name='vgg16'), 'encoder name'),
    (lambda d: d['model']['image_encoder'].update(name='mobilenet_v2', pretrained=True), 'wheel weights'),
    (lambda d: d['model'].update(adapters={'image': [8, 8, 8, 8, 8]}), 'LiRCDepth feature adapters'),
    (lambda d: d['model']['head'].update(num_bins='many'), 'expected an integer'),
])
def test_bad_configs_raise_config_error(mutate, fragment):
    data = {'input': {'height': 64, 'width': 128},
            'model': {'architecture': 'student', 'decoder': {}, 'fusion': {}, 'head': {}, 'image_encoder': {}}}
    data = copy.deepcopy(data)
    mutate(data)
    with pytest.raises(ConfigError) as info:
        load_model_config(data)
    assert fragment in str(info.value)


def test_missing_model_section_and_file_errors_name_the_source(tmp_path):
    with pytest.raises(ConfigError, match='no model section'):
        load_model_config({'input': {}})
    path = tmp_path / 'broken.yaml'
    path.write_text('model:\n  architecture: student\n  decoder: {kind: pw_daspp, bogus: 1}\n')
    with pytest.raises(ConfigError, match='broken.yaml'):
        load_model_config(path)
    with pytest.raises(ConfigError, match='cannot read'):
        load_model_config(tmp_path / 'absent.yaml')
