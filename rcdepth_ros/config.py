"""
One configuration schema for training, evaluation, export and the node.

Configurations are dataclasses. ``from_dict`` builds one from plain data (a YAML file, a checkpoint's JSON) and
refuses unknown keys and wrong types with a ``ConfigError`` that names the key path, so a typo in a YAML file
fails at load time instead of silently falling back to a default. ``apply_overrides`` applies command-line
``key.sub=value`` overrides (values parsed as YAML) to the plain data before it is built.

``InputConfig`` lives here because the data pipeline, the inference engine and the node all need it: it says
how an original camera image and radar returns become the tensors the model reads.
"""

import argparse
import dataclasses
import math
from pathlib import Path
import typing

from rcdepth_ros.errors import ConfigError
import yaml

RADAR_CHANNELS = ('depth', 'rcs', 'v_radial', 'vx', 'vy', 'mask')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass
class InputConfig:
    """
    How an original-size image and radar returns become model input, and how depth maps back.

    The image is scaled by ``width / original_width`` (aspect ratio kept), then rows are cropped (or padded with
    zeros) to ``height``: ``crop='bottom'`` keeps the lowest rows (the sky carries no radar and little depth
    signal), ``'top'`` the highest, ``'center'`` the middle ones. Intrinsics follow the same scale and crop.
    """

    height: int = 192
    width: int = 640
    crop: str = 'bottom'
    radar_channels: typing.Tuple[str, ...] = ('depth', 'rcs', 'v_radial', 'mask')
    radar_min_depth: float = 1.0
    max_depth: float = 100.0
    # Radar elevation is poor: each return may be drawn as a vertical segment of this metric height
    # (centred on the return) instead of a single pixel. 0 disables it.
    radar_vertical_extension_m: float = 0.0
    # Radar channels are divided by these before entering the network (keys: channel names).
    radar_scale: typing.Dict[str, float] = dataclasses.field(
        default_factory=lambda: {'depth': 100.0, 'rcs': 50.0, 'v_radial': 20.0, 'vx': 20.0, 'vy': 20.0,
                                 'mask': 1.0})
    image_mean: typing.Tuple[float, float, float] = IMAGENET_MEAN
    image_std: typing.Tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self):
        """Check ranges and names; raise ConfigError naming the field."""
        if self.height < 16 or self.width < 16 or self.height % 32 or self.width % 32:
            raise ConfigError(f'input: height and width must be multiples of 32 and >= 32, got '
                              f'{self.height}x{self.width}')
        if self.crop not in ('bottom', 'top', 'center'):
            raise ConfigError(f"input.crop must be 'bottom', 'top' or 'center', got {self.crop!r}")
        unknown = [c for c in self.radar_channels if c not in RADAR_CHANNELS]
        if unknown or not self.radar_channels:
            raise ConfigError(f'input.radar_channels: unknown {unknown}; choose from {RADAR_CHANNELS}')
        if not 0.0 <= self.radar_min_depth < self.max_depth:
            raise ConfigError(f'input: need 0 <= radar_min_depth < max_depth, got {self.radar_min_depth}, '
                              f'{self.max_depth}')
        if self.radar_vertical_extension_m < 0:
            raise ConfigError('input.radar_vertical_extension_m must be >= 0')
        missing = [c for c in self.radar_channels if c not in self.radar_scale]
        if missing or any(not (v > 0 and math.isfinite(v)) for v in self.radar_scale.values()):
            raise ConfigError(f'input.radar_scale needs a positive finite scale for every channel; missing '
                              f'{missing}')

    @property
    def num_radar_channels(self):
        """Return the number of channels of the radar image the model reads."""
        return len(self.radar_channels)


def _check_type(value, annotation, where):
    """Convert ``value`` to ``annotation`` where that is lossless, else raise ConfigError."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is typing.Any:
        return value
    if origin is typing.Union:
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check_type(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError('; '.join(errors) or f'{where}: bad value {value!r}')
    if dataclasses.is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        return from_dict(annotation, value, where)
    if origin in (tuple, typing.Tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {type(value).__name__} {value!r}')
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_check_type(v, args[0], f'{where}[{i}]') for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f'{where}: expected {len(args)} items, got {len(value)}')
        kinds = args or [typing.Any] * len(value)
        return tuple(_check_type(v, a, f'{where}[{i}]') for i, (v, a) in enumerate(zip(value, kinds)))
    if origin in (list, typing.List):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f'{where}: expected a list, got {type(value).__name__} {value!r}')
        return [_check_type(v, args[0] if args else typing.Any, f'{where}[{i}]') for i, v in enumerate(value)]
    if origin in (dict, typing.Dict):
        if not isinstance(value, dict):
            raise ConfigError(f'{where}: expected a mapping, got {type(value).__name__} {value!r}')
        key_t, val_t = args if args else (typing.Any, typing.Any)
        return {_check_type(k, key_t, f'{where}.<key>'): _check_type(v, val_t, f'{where}.{k}')
                for k, v in value.items()}
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f'{where}: expected true/false, got {value!r}')
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f'{where}: expected an integer, got {value!r}')
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f'{where}: expected a number, got {value!r}')
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f'{where}: expected a string, got {value!r}')
        return value
    return value


def from_dict(cls, data, where=None):
    """Build dataclass ``cls`` from a mapping; unknown keys and wrong types raise ConfigError."""
    where = where or cls.__name__
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f'{where}: expected a mapping, got {type(data).__name__}')
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; known: {sorted(fields)}')
    hints = typing.get_type_hints(cls)
    kwargs = {name: _check_type(value, hints[name], f'{where}.{name}') for name, value in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f'{where}: {exc}') from exc


def to_dict(obj):
    """Return plain data (dicts, lists, numbers, strings) for a config dataclass, JSON and YAML safe."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {str(k): to_dict(v) for k, v in obj.items()}
    return obj


def load_yaml(path):
    """Read a YAML mapping; a missing file or non-mapping content raises ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f'{path}: cannot read configuration ({exc.strerror or exc})') from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: invalid YAML: {exc}') from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f'{path}: expected a mapping at the top level, got {type(data).__name__}')
    return data


def apply_overrides(data, overrides):
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied; values are parsed as YAML."""
    import copy
    result = copy.deepcopy(data)
    for item in overrides or ():
        if '=' not in item:
            raise ConfigError(f'override {item!r}: expected key.path=value')
        key, raw = item.split('=', 1)
        parts = [p for p in key.strip().split('.') if p]
        if not parts:
            raise ConfigError(f'override {item!r}: empty key')
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise ConfigError(f'override {item!r}: value is not valid YAML ({exc})') from exc
        node = result
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(f'override {item!r}: {part} is not a mapping')
            node = child
        node[parts[-1]] = value
    return result


def bounded_number(kind, low, inclusive=True):
    """
    Return an argparse ``type`` that parses ``kind`` (int or float) and refuses values below ``low``.

    So ``--runs -1`` or ``--batch-size 0`` end at parse time with argparse's one-line usage error (status 2)
    instead of being accepted or failing later, after a model was loaded.
    """
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'expected {"an integer" if kind is int else "a number"}, '
                                             f'got {text!r}') from None
        if not (math.isfinite(value) and (value >= low if inclusive else value > low)):
            raise argparse.ArgumentTypeError(f'must be {">=" if inclusive else ">"} {low}, got {text}')
        return value

    parse.__name__ = f'{kind.__name__} {">=" if inclusive else ">"} {low}'
    return parse
