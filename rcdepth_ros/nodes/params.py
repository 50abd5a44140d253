"""
The depth node's parameters: one table of names, defaults, descriptions, ranges and when a change takes effect.

``declare(node)`` declares them all with ``ParameterDescriptor``s (numeric ranges, so rclpy itself rejects an
out-of-range set with a reason). ``validate(values)`` checks what a range cannot express (QoS names, choices,
min < max) and is called from the set-parameters callback. ``LIVE`` parameters are applied by the post-set callback
at once; ``AT_CONFIGURE`` ones (the model) are read by the configure transition and can be set only while the node
is unconfigured (so a lifecycle manager can fix a bad ``model_path`` and configure again); the others (topics, QoS,
synchroniser) apply at the next activation. ``config/rcdepth.yaml`` lists every parameter with its default.

Extrinsics given as parameters (used where tf2 is not importable, or with ``extrinsics.source: parameters``):
``extrinsics.frames`` lists sensor frames; each has ``extrinsics.<frame>.matrix`` (16 numbers, row-major
``T_camera_from_frame``) or ``extrinsics.<frame>.translation`` (3) + ``extrinsics.<frame>.rotation`` (quaternion
x, y, z, w). They are declared once the frame list is known (``declare_extrinsics``).
"""

import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.geometry.transforms import as_transform, transform_from_translation_quaternion
from rcdepth_ros.core.inference.bundled_model import SYNTHETIC_ONLY
from rcdepth_ros.core.inference.options import BACKENDS, PRECISIONS, PREPROCESS_MODES
from rcdepth_ros.core.pictures.colour import COLORMAPS
from rcdepth_ros.errors import ConfigError, RcdepthError
from rcdepth_ros.nodes.qos import QOS_NAMES
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.parameter import Parameter

IMAGE_TRANSPORTS = ('raw', 'compressed')
REFINE_MODES = ('none', 'radar')
EXTRINSICS_SOURCES = ('auto', 'tf', 'parameters')
FIELD_AUTO = 'auto'
FIELD_NONE = 'none'


@dataclasses.dataclass(frozen=True)
class ParamSpec:
    """One parameter: name, default, description, range (low, high), read_only, live, at_configure, choices."""

    name: str
    default: typing.Any
    description: str
    range: typing.Optional[tuple] = None  # noqa: A003 - the descriptor's word
    read_only: bool = False
    live: bool = False
    choices: typing.Optional[tuple] = None
    at_configure: bool = False


SPECS = (
    # Model (read at configure: settable only while the node is unconfigured).
    ParamSpec('model_path', '', 'checkpoint (.safetensors with its .json beside it); empty: the bundled demo model in '
              f"the package's weights/ directory, {SYNTHETIC_ONLY}", at_configure=True),
    ParamSpec('device', 'auto', 'auto (CUDA when available), cpu, cuda or cuda:N; CUDA that is not there falls '
              'back to the CPU with a warning', at_configure=True),
    ParamSpec('half', 'auto', 'fp16 inference: auto (on CUDA), true or false (fp16 is never used on the CPU)',
              at_configure=True, choices=('auto', 'true', 'false')),
    ParamSpec('warmup', True, 'run the model once (with saliency) at configure, so the first frame is not slow',
              at_configure=True),
    ParamSpec('num_threads', 0, "torch CPU threads; 0 keeps torch's default", range=(0, 256), at_configure=True),
    ParamSpec('backend', 'torch', 'torch, or onnxruntime (the model exported to ONNX on first use, cached beside '
              'the checkpoint); Grad-CAM saliency always runs on torch', at_configure=True, choices=BACKENDS),
    ParamSpec('precision', 'auto', "auto (from 'half'), fp32, fp16, bf16 (autocast; the CPU's bf16 units) or int8 "
              '(onnxruntime, static quantisation); a reduced-precision frame with a non-finite depth is run again '
              'in fp32 and counted', at_configure=True, choices=('auto',) + PRECISIONS),
    ParamSpec('int8_calibration', '', 'int8: frames to calibrate on when the quantised file is not cached yet, '
              "'source:split:frames' (e.g. astyx:train:0-49); empty: the cached file must exist", at_configure=True),
    ParamSpec('preprocess', 'auto', 'where resize, normalisation and radar rasterisation run: auto (device on '
              'CUDA, host on the CPU), host or device', at_configure=True, choices=PREPROCESS_MODES),
    ParamSpec('cuda_graphs', True, 'capture the forward and saliency passes as CUDA graphs (CUDA only; a failed '
              'capture runs eagerly with a warning)', at_configure=True),
    # Inputs (applied at the next activation).
    ParamSpec('image_transport', 'raw', "raw: sensor_msgs/Image on 'image'; compressed: CompressedImage on "
              "'image/compressed'", choices=IMAGE_TRANSPORTS),
    ParamSpec('radar_topics', ['radar/points'], 'PointCloud2 topics of the radars; the first is matched with the '
              'image, all are accumulated'),
    ParamSpec('queue_size', 10, 'approximate-time synchroniser queue per input', range=(1, 1000)),
    ParamSpec('slop', 0.05, 'approximate-time synchroniser slop, seconds', range=(0.0, 5.0)),
    ParamSpec('qos.input', 'sensor_data', 'QoS of the subscriptions (' + ', '.join(QOS_NAMES) + ')',
              choices=QOS_NAMES),
    ParamSpec('qos.input_depth', 5, 'history depth of the subscriptions', range=(1, 1000)),
    ParamSpec('qos.output', 'reliable', 'QoS of the publishers (' + ', '.join(QOS_NAMES) + ')', choices=QOS_NAMES),
    ParamSpec('qos.output_depth', 1, 'history depth of the publishers', range=(1, 1000)),
    ParamSpec('radar.cache_span', 2.0, 'seconds of radar sweeps kept per radar topic', range=(0.1, 60.0)),
    ParamSpec('time_jump_threshold', 1.0, 'a stamp this many seconds older than the newest seen (bag restarted) '
              'resets the synchroniser and caches', range=(0.0, 86400.0)),
    ParamSpec('extrinsics.source', 'auto', 'auto (tf2 when importable, else parameters), tf or parameters',
              choices=EXTRINSICS_SOURCES),
    ParamSpec('extrinsics.fixed_frame', '', 'tf: fixed frame for lookup_transform_full (motion compensation '
              'between the radar and image stamps); empty: lookup_transform at the radar stamp'),
    ParamSpec('extrinsics.tf_timeout', 0.05, 'tf: seconds to wait for a transform', range=(0.0, 5.0)),
    ParamSpec('extrinsics.camera_frame', '', 'parameters: the camera frame the transforms lead to; empty: the '
              "images' frame id"),
    ParamSpec('extrinsics.frames', [''], 'parameters: sensor frames with extrinsics.<frame>.matrix or '
              '.translation + .rotation'),
    ParamSpec('diagnostics.period', 1.0, 'seconds between /diagnostics messages', range=(0.1, 60.0)),
    ParamSpec('pipeline.overlap', True, 'decode and preprocess the next frame while the model runs this one (two '
              'worker threads); false: one thread does both in turn'),
    # Applied at once (post-set callback).
    ParamSpec('radar.window', 0.1, 'sweeps stamped up to this many seconds before the image are accumulated',
              range=(0.0, 10.0), live=True),
    ParamSpec('radar.max_sweeps', 1, 'sweeps per radar accumulated into one frame', range=(1, 100), live=True),
    ParamSpec('radar.fields.x', 'x', 'PointCloud2 field of x', live=True),
    ParamSpec('radar.fields.y', 'y', 'PointCloud2 field of y', live=True),
    ParamSpec('radar.fields.z', 'z', 'PointCloud2 field of z', live=True),
    ParamSpec('radar.fields.rcs', FIELD_AUTO, "field of the RCS; 'auto' picks a known name (rcs, RCS, mag, ...), "
              "'none' disables", live=True),
    ParamSpec('radar.fields.v_radial', FIELD_AUTO, "field of the radial velocity; 'auto' or 'none' as above",
              live=True),
    ParamSpec('radar.fields.vx', FIELD_AUTO, "field of the Cartesian vx (nuScenes vx_comp); 'auto' or 'none'",
              live=True),
    ParamSpec('radar.fields.vy', FIELD_AUTO, "field of the Cartesian vy (nuScenes vy_comp); 'auto' or 'none'",
              live=True),
    ParamSpec('camera_info_wait', 0.1, 'seconds the worker waits for the camera_info stamped like the image when '
              "camera_info arrives after it (only once camera_info has been seen with the images' stamps)",
              range=(0.0, 2.0), live=True),
    ParamSpec('saliency.enabled', True, 'compute Grad-CAM saliency (only while saliency/image has subscribers)',
              live=True),
    ParamSpec('debug.depth_color', False, 'publish ~/debug/depth_color (bgr8, while subscribed)', live=True),
    ParamSpec('debug.color_min', 0.0, 'depth at the near end of the colour map, metres', range=(0.0, 1000.0),
              live=True),
    ParamSpec('debug.color_max', 80.0, 'depth at the far end of the colour map, metres', range=(0.01, 1000.0),
              live=True),
    ParamSpec('debug.colormap', 'turbo', 'colour map: ' + ', '.join(sorted(COLORMAPS)), live=True,
              choices=tuple(sorted(COLORMAPS))),
    ParamSpec('warn_throttle', 5.0, 'seconds between two warnings of the same kind', range=(0.0, 3600.0),
              live=True),
    # Radar-anchored refinement (rcdepth_ros.core.inference.refine, docs/refinement.md); defaults are RefineSettings'.
    ParamSpec('refine', 'none', 'test-time refinement of the depth with the radar returns: none or radar', live=True,
              choices=REFINE_MODES),
    ParamSpec('refine.budget_ms', 30.0, 'time budget of the refinement per frame, ms; 0 disables it; when it runs '
              'out the unrefined depth is published', range=(0.0, 10000.0), live=True),
    ParamSpec('refine.elevation_spread_deg', 2.0, "half-width of the radar beam's elevation spread: a return may "
              'support any row of its column within it, degrees', range=(0.0, 30.0), live=True),
    ParamSpec('refine.near_cutoff', 1.5, 'a return nearer than the depth by more than this log ratio has no weight',
              range=(0.001, 5.0), live=True),
    ParamSpec('refine.far_cutoff', 0.15, 'a return farther than the depth by more than this log ratio has no weight '
              '(multipath ghosts lie beyond the surface)', range=(0.001, 5.0), live=True),
)
BY_NAME = {spec.name: spec for spec in SPECS}
LIVE = frozenset(spec.name for spec in SPECS if spec.live)
AT_CONFIGURE = frozenset(spec.name for spec in SPECS if spec.at_configure)


def descriptor(spec):
    """Return the ParameterDescriptor of a spec (range, read_only, choices and when it applies in the description)."""
    text = spec.description
    if spec.at_configure:
        text += ' (read at configure: set it while the node is unconfigured)'
    if spec.choices:
        text += f' [one of: {", ".join(spec.choices)}]'
    desc = ParameterDescriptor(description=text, read_only=spec.read_only)
    if spec.range is not None:
        low, high = spec.range
        if isinstance(spec.default, float):
            desc.floating_point_range = [FloatingPointRange(from_value=float(low), to_value=float(high), step=0.0)]
        else:
            desc.integer_range = [IntegerRange(from_value=int(low), to_value=int(high), step=1)]
    if spec.choices:
        desc.additional_constraints = 'one of: ' + ', '.join(spec.choices)
    return desc


def declare(node, specs=SPECS):
    """Declare every parameter of ``specs`` on ``node`` (overrides from launch / YAML apply)."""
    for spec in specs:
        node.declare_parameter(spec.name, spec.default, descriptor(spec))


def values(node, specs=SPECS):
    """Return ``{name: value}`` of ``specs`` as the node holds them."""
    return {spec.name: node.get_parameter(spec.name).value for spec in specs}


def validate(changes):
    """
    Return None when the ``{name: value}`` changes are acceptable, else the reason (a sentence naming the parameter).

    Ranges and read_only are enforced by rclpy from the descriptors before this is called.
    """
    merged = dict(changes)
    for name, value in merged.items():
        spec = BY_NAME.get(name)
        if spec is None:
            continue
        if spec.choices and str(value).strip().lower() not in spec.choices:
            return f'{name}: {value!r} is not one of {", ".join(spec.choices)}'
        if name == 'radar_topics':
            topics = [t for t in (value or []) if t]
            if not topics:
                return 'radar_topics: at least one radar topic is needed'
            if len(set(topics)) != len(topics):
                return f'radar_topics: duplicate topic in {topics}'
        if name.startswith('radar.fields.') and name[-2:] in ('.x', '.y', '.z') and not str(value).strip():
            return f'{name}: x, y and z need a field name'
    return None


def refuse_after_configure(names, state):
    """Return the reason to refuse setting configure-time parameters ``names`` in lifecycle ``state``, else None."""
    fixed = sorted(n for n in names if n in AT_CONFIGURE)
    if not fixed or state == 'unconfigured':
        return None
    return (f'{", ".join(fixed)}: read at configure, so it can be set only while the node is unconfigured (it is '
            f'{state}: deactivate and clean it up first, set it, then configure and activate again)')


def refine_mapping(current):
    """Return the RefineSettings fields (a plain mapping) of the ``refine*`` parameter values."""
    mapping = {'mode': str(current['refine']).strip().lower()}
    for name, value in current.items():
        if name.startswith('refine.'):
            mapping[name[len('refine.'):]] = value
    return mapping


def validate_color_range(low, high):
    """Return None when the colour range is usable, else the reason."""
    if not high > low:
        return f'debug.color_max ({high}) must be greater than debug.color_min ({low})'
    return None


def field_map_values(current):
    """Return RadarFieldMap keyword arguments from the ``radar.fields.*`` values (auto -> None, none -> '')."""
    out = {}
    for role in ('x', 'y', 'z', 'rcs', 'v_radial', 'vx', 'vy'):
        value = str(current[f'radar.fields.{role}']).strip()
        if role in ('x', 'y', 'z'):
            out[role] = value
        elif value.lower() == FIELD_AUTO:
            out[role] = None
        elif value.lower() in (FIELD_NONE, ''):
            out[role] = ''
        else:
            out[role] = value
    return out


def declare_extrinsics(node):
    """Declare ``extrinsics.<frame>.matrix / .translation / .rotation`` for every frame of ``extrinsics.frames``."""
    frames = [f for f in (node.get_parameter('extrinsics.frames').value or []) if f]
    for frame in frames:
        for suffix, text in (('matrix', '16 numbers, row-major T_camera_from_frame'),
                             ('translation', 'x, y, z of the frame in the camera frame, metres'),
                             ('rotation', 'quaternion x, y, z, w of the frame in the camera frame')):
            name = f'extrinsics.{frame}.{suffix}'
            if not node.has_parameter(name):
                node.declare_parameter(name, Parameter.Type.DOUBLE_ARRAY,
                                       ParameterDescriptor(description=f'{frame}: {text}', read_only=True))
    return frames


def _optional(node, name):
    """Return the value of a declared parameter, None when it was declared without a value and never set."""
    try:
        return node.get_parameter(name).value
    except ParameterUninitializedException:
        return None


def extrinsics_from_parameters(node):
    """Return ``{frame: T_camera_from_frame}`` from the declared extrinsics parameters; ConfigError names a bad one."""
    transforms = {}
    for frame in declare_extrinsics(node):
        matrix, translation, rotation = (_optional(node, f'extrinsics.{frame}.{suffix}')
                                         for suffix in ('matrix', 'translation', 'rotation'))
        try:
            if matrix is not None and len(matrix):
                if len(matrix) != 16:
                    raise ConfigError(f'extrinsics.{frame}.matrix needs 16 numbers (row-major 4x4), got '
                                      f'{len(matrix)}')
                transforms[frame] = as_transform(np.asarray(matrix, dtype=np.float64).reshape(4, 4),
                                                 f'extrinsics.{frame}.matrix')
            elif translation is not None and rotation is not None and len(translation) == 3 and len(rotation) == 4:
                transforms[frame] = transform_from_translation_quaternion(translation, rotation)
            else:
                raise ConfigError(f'extrinsics for frame {frame!r}: give extrinsics.{frame}.matrix (16 numbers) or '
                                  f'extrinsics.{frame}.translation (3) and extrinsics.{frame}.rotation (4: x y z w)')
        except ConfigError:
            raise
        except RcdepthError as exc:
            raise ConfigError(f'extrinsics for frame {frame!r}: {exc}') from None
    return transforms


def extrinsics_overrides(transforms, camera_frame=''):
    """Return the parameter dict (for a params file or ``--ros-args -p``) that gives ``transforms`` to a node."""
    frames = sorted(transforms)
    out = {'extrinsics.source': 'parameters', 'extrinsics.camera_frame': str(camera_frame),
           'extrinsics.frames': frames or ['']}
    for frame in frames:
        T = as_transform(transforms[frame], f'extrinsics of {frame!r}')
        out[f'extrinsics.{frame}.matrix'] = [float(v) for v in T.reshape(-1)]
    return out
