"""
Extrinsics for a node: tf2 when ``tf2_ros`` is importable (a ROS 2 install), else fixed transforms from parameters.

Both answer ``lookup(target, target_ns, source, source_ns) -> T_target_from_source``
(``core.geometry.extrinsics``). With tf2 and a fixed frame, the lookup is
``lookup_transform_full(target, t_image, source, t_radar, fixed)``: a sweep fired before the exposure lands where the
vehicle was then; without a fixed frame it is ``lookup_transform`` at the sweep's stamp. A missing transform raises
ProjectionError (the node counts the sweep as in an unknown frame).
"""

from rcdepth_ros.core.bags.tf import transform_to_matrix
from rcdepth_ros.core.geometry.extrinsics import StaticExtrinsics
from rcdepth_ros.errors import ConfigError, ProjectionError, RcdepthError
from rcdepth_ros.nodes.params import extrinsics_from_parameters
from rclpy.duration import Duration
from rclpy.time import Time


def tf2_available():
    """Return True when tf2_ros (a ROS 2 install) is importable."""
    try:
        # tf2_ros: an optional ROS library (not on PyPI), used when present
        import tf2_ros  # noqa: F401
    except ImportError:
        return False
    return True


class Tf2Extrinsics:
    """Lookups in a tf2 buffer filled by a TransformListener on ``node`` (``/tf`` and latched ``/tf_static``)."""

    def __init__(self, node, fixed_frame='', timeout_s=0.05):
        """Start listening; ``fixed_frame`` empty: no motion compensation."""
        import tf2_ros
        self._tf2 = tf2_ros
        self.buffer = tf2_ros.Buffer()
        self.listener = tf2_ros.TransformListener(self.buffer, node)
        self.fixed_frame = str(fixed_frame or '')
        self.timeout_s = float(timeout_s)

    def lookup(self, target_frame, target_ns, source_frame, source_ns):
        """Return ``T_target_from_source`` from tf2 (ProjectionError naming the frames when tf2 has none)."""
        timeout = Duration(nanoseconds=int(self.timeout_s * 1e9))
        try:
            if self.fixed_frame:
                msg = self.buffer.lookup_transform_full(target_frame, Time(nanoseconds=int(target_ns)), source_frame,
                                                        Time(nanoseconds=int(source_ns)), self.fixed_frame, timeout)
            else:
                msg = self.buffer.lookup_transform(target_frame, source_frame, Time(nanoseconds=int(source_ns)),
                                                   timeout)
        except (self._tf2.LookupException, self._tf2.ConnectivityException, self._tf2.ExtrapolationException,
                self._tf2.InvalidArgumentException, self._tf2.TimeoutException) as exc:
            raise ProjectionError(f'tf2 has no transform from {source_frame!r} to {target_frame!r}: {exc}') from None
        try:
            return transform_to_matrix(msg)[3]
        except RcdepthError as exc:
            raise ProjectionError(f'tf2 transform {source_frame!r} -> {target_frame!r}: {exc}') from None

    def close(self):
        """Stop listening."""
        unregister = getattr(self.listener, 'unregister', None)
        if unregister is not None:
            unregister()


def uses_tf2(source):
    """Return True when extrinsics ``source`` ('auto', 'tf', 'parameters') resolves to tf2 on this machine."""
    source = str(source).strip().lower()
    return source == 'tf' or (source == 'auto' and tf2_available())


def extrinsics_warnings(source, parameter_frames, camera_frame=''):
    """
    Return the problems with the extrinsics that can be seen at configure time, each one sentence (empty: none).

    Which sensor frames the radars (or the lidar) stamp their clouds with is only known from the messages; what
    the parameters name is known now: parameter extrinsics with no sensor frame at all (every sweep not stamped in
    the camera frame itself would be skipped), the camera frame listed as a sensor frame (its transform is never
    used), and parameter extrinsics that are not used because tf2 serves (``extrinsics.source: auto`` on a ROS 2
    install). ``parameter_frames`` is ``extrinsics.frames``.
    """
    frames = [str(f) for f in (parameter_frames or []) if f]
    camera = str(camera_frame or '')
    if uses_tf2(source):
        if frames:
            return [f'extrinsics.frames lists {frames}, but the extrinsics come from tf2 (extrinsics.source '
                    f'{str(source).strip().lower()!r}): those parameter transforms are not used; set '
                    f'extrinsics.source to parameters to use them, or publish the frames on /tf_static']
        return []
    warnings = []
    if not frames:
        warnings.append('extrinsics from parameters name no sensor frame (extrinsics.frames is empty): a cloud is '
                        'used only if it is stamped in the camera frame itself, every other one is skipped and '
                        'counted as in an unknown frame; list the sensor frames in extrinsics.frames with '
                        'extrinsics.<frame>.matrix (or .translation + .rotation)')
    if camera and camera in frames:
        warnings.append(f'extrinsics.frames lists the camera frame {camera!r} itself: its transform is not used '
                        f'(clouds stamped in the camera frame need none)')
    return warnings


def unknown_frame_hint(source):
    """Return what to do about a sensor frame without extrinsics, for the extrinsics ``source`` in use."""
    if uses_tf2(source):
        return ('publish its transform to the camera frame on /tf_static (or set extrinsics.source to parameters '
                'and give it in extrinsics.frames)')
    return 'add it to extrinsics.frames with extrinsics.<frame>.matrix (16 numbers, row-major T_camera_from_frame)'


def make_extrinsics(node, source='auto', fixed_frame='', timeout_s=0.05, camera_frame=''):
    """
    Return (provider, description) for ``source`` 'auto', 'tf' or 'parameters'.

    'tf' without tf2_ros raises ConfigError; 'auto' takes tf2 when importable and parameters otherwise.
    """
    source = str(source).strip().lower()
    if source not in ('auto', 'tf', 'parameters'):
        raise ConfigError(f'extrinsics.source must be auto, tf or parameters, got {source!r}')
    if uses_tf2(source):
        if not tf2_available():
            raise ConfigError('extrinsics.source is tf but tf2_ros is not importable (no ROS 2 install); use '
                              'parameters')
        description = f'tf2 (fixed frame {fixed_frame!r})' if fixed_frame else 'tf2 (at the sweep stamps)'
        return Tf2Extrinsics(node, fixed_frame, timeout_s), description
    transforms = extrinsics_from_parameters(node)
    description = f'parameters: {", ".join(sorted(transforms)) or "no frames"} -> {camera_frame or "<image frame>"}'
    return StaticExtrinsics(transforms, camera_frame), description
