"""``build_model(model_cfg, input_cfg)``: the one place a configuration becomes a network."""

from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.lircdepth import LiRCDepth
from rcdepth_ros.models.student import XDRCDepthStudent
from rcdepth_ros.models.teacher import CaFNetTeacher

ARCHITECTURE_CLASSES = {'student': XDRCDepthStudent, 'lircdepth': LiRCDepth, 'teacher': CaFNetTeacher}


def build_model(model_cfg, input_cfg, load_pretrained=True):
    """
    Return the torch module of ``model_cfg.architecture`` (a ``DepthModel``), in training mode.

    ``load_pretrained=False`` skips reading the encoders' pretrained weights (used when a checkpoint's weights are
    loaded right after).
    """
    try:
        cls = ARCHITECTURE_CLASSES[model_cfg.architecture]
    except KeyError:
        raise ConfigError(f'unknown architecture {model_cfg.architecture!r}; choose from '
                          f'{sorted(ARCHITECTURE_CLASSES)}') from None
    return cls(model_cfg, input_cfg, load_pretrained)
