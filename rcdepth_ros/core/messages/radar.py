"""
Radar returns from named fields: the field-name mapping, PointCloud2 <-> RadarPoints, structured arrays.

Every source names its columns differently (nuScenes ``rcs``/``vx_comp``, Astyx ``Mag``/``V_r``, Continental
drivers ``RCS``/``doppler``...). ``RadarFieldMap`` resolves the roles the package uses (x, y, z required; RCS,
radial velocity and Cartesian velocity optional) against the names a source actually has, so one parser serves
files, PointCloud2 messages and structured arrays alike. Points with NaN or inf coordinates are kept unless
``drop_invalid=True``: projection drops them anyway, and keeping them lets a caller count them.
"""

import dataclasses
import typing

import numpy as np

from rcdepth_ros.core.messages.clouds import numpy_to_pointcloud2, pointcloud2_field_names, read_points
from rcdepth_ros.core.messages.msgtypes import convert_header, make_header, ros_message_types, stamp_to_ns
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import RadarFormatError


RCS_CANDIDATES = ('rcs', 'RCS', 'Mag', 'mag', 'magnitude', 'intensity')
V_RADIAL_CANDIDATES = ('v_radial', 'v_r', 'V_r', 'doppler', 'vr', 'radial_velocity', 'velocity')
VX_CANDIDATES = ('vx_comp', 'vx')
VY_CANDIDATES = ('vy_comp', 'vy')
RADAR_ROLES = ('x', 'y', 'z', 'rcs', 'v_radial', 'vx', 'vy')


@dataclasses.dataclass
class RadarFieldMap:
    """
    Which source field feeds which radar role.

    ``x``, ``y``, ``z`` are required; a name that is not present exactly is also looked up case-insensitively
    (Astyx writes ``X Y Z``). For the optional roles ``rcs``, ``v_radial``, ``vx``, ``vy``: ``None`` picks the
    first candidate present (exact match first, then case-insensitive), a name given by the user must exist, and
    ``''`` disables the role. Without a radial-velocity field but with vx/vy, the radial velocity is computed as
    the projection of (vx, vy, 0) onto the line of sight (positive moving away).
    """

    x: str = 'x'
    y: str = 'y'
    z: str = 'z'
    rcs: typing.Optional[str] = None
    v_radial: typing.Optional[str] = None
    vx: typing.Optional[str] = None
    vy: typing.Optional[str] = None

    def resolve(self, names, source='radar'):
        """
        Return ``{role: field name}`` for the roles found among ``names``; disabled or absent roles are omitted.

        Raises RadarFormatError naming the missing field and the fields present when x, y or z (or an optional
        field the user named explicitly) is absent.
        """
        names = list(names)
        resolved = {}
        for role in ('x', 'y', 'z'):
            wanted = getattr(self, role)
            found = _find_name(names, (wanted,)) if wanted else None
            if found is None:
                raise RadarFormatError(f'{source}: required field {wanted!r} (role {role}) is missing; fields '
                                       f'present: {names}')
            resolved[role] = found
        optional = (('rcs', RCS_CANDIDATES), ('v_radial', V_RADIAL_CANDIDATES), ('vx', VX_CANDIDATES),
                    ('vy', VY_CANDIDATES))
        for role, candidates in optional:
            wanted = getattr(self, role)
            if wanted == '':
                continue
            if wanted is not None:
                found = _find_name(names, (wanted,))
                if found is None:
                    raise RadarFormatError(f'{source}: field {wanted!r} configured for {role} is missing; fields '
                                           f'present: {names}')
            else:
                found = _find_name(names, candidates)
            if found is not None:
                resolved[role] = found
        if ('vx' in resolved) != ('vy' in resolved):
            # One Cartesian component alone is no velocity: ignore it rather than invent the other.
            resolved.pop('vx', None)
            resolved.pop('vy', None)
        return resolved


def _find_name(names, candidates):
    for name in candidates:
        if name in names:
            return name
    lowered = {n.lower(): n for n in names}
    for name in candidates:
        if name.lower() in lowered:
            return lowered[name.lower()]
    return None


def radial_velocity_from_vxy(xyz, vxy):
    """
    Return the line-of-sight velocity (N,) of returns at ``xyz`` (N, 3) moving with ``vxy`` (N, 2), in m/s.

    The velocity vector (vx, vy, 0) is projected onto the unit vector from the sensor to the return; positive
    means moving away. A return at the sensor origin has no line of sight and gets 0.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    vxy = np.asarray(vxy, dtype=np.float64)
    rng = np.linalg.norm(xyz, axis=1)
    dot = xyz[:, 0] * vxy[:, 0] + xyz[:, 1] * vxy[:, 1]
    with np.errstate(invalid='ignore', divide='ignore'):
        v = np.where(rng > 0, dot / np.where(rng > 0, rng, 1.0), 0.0)
    return v.astype(np.float32)


def _column(array, name, source):
    values = array[name]
    if values.ndim > 1:
        if values.shape[1:] != (1,) and np.prod(values.shape[1:]) != 1:
            raise RadarFormatError(f'{source}: field {name!r} has {int(np.prod(values.shape[1:]))} elements per '
                                   f'point; a radar role needs a scalar field')
        values = values.reshape(values.shape[0])
    with np.errstate(over='ignore'):    # a value beyond float32 becomes inf: a non-finite (invalid) return
        return np.asarray(values, dtype=np.float32)


def radar_from_structured(array, field_map=None, frame_id='radar', stamp_ns=0, drop_invalid=False,
                          source='radar'):
    """
    Return RadarPoints from a structured numpy array (one record per return) using ``field_map``.

    Organized (2-D) arrays are flattened row-major. ``drop_invalid`` removes returns with a non-finite
    coordinate; by default they are kept. ``source`` names the input in error messages.
    """
    field_map = field_map or RadarFieldMap()
    array = np.asarray(array)
    if array.dtype.names is None:
        raise RadarFormatError(f'{source}: expected a structured array with named fields, got dtype {array.dtype}')
    array = array.reshape(-1)
    roles = field_map.resolve(array.dtype.names, source)
    xyz = np.stack([_column(array, roles[r], source) for r in ('x', 'y', 'z')], axis=1) if len(array) else \
        np.zeros((0, 3), np.float32)
    rcs = _column(array, roles['rcs'], source) if 'rcs' in roles else None
    vxy = None
    if 'vx' in roles:
        vxy = np.stack([_column(array, roles['vx'], source), _column(array, roles['vy'], source)], axis=1)
        vxy = vxy.reshape(len(array), 2)
    if 'v_radial' in roles:
        v_radial = _column(array, roles['v_radial'], source)
    elif vxy is not None:
        v_radial = radial_velocity_from_vxy(xyz, vxy)
    else:
        v_radial = None
    radar = RadarPoints(xyz, rcs, v_radial, vxy, frame_id, stamp_ns)
    if drop_invalid:
        radar = radar.select(np.all(np.isfinite(radar.xyz), axis=1))
    return radar


def pointcloud2_to_radar(msg, field_map=None, drop_invalid=False):
    """
    Return RadarPoints from a PointCloud2 message, fields picked by name with ``field_map``.

    ``frame_id`` and ``stamp_ns`` come from the message header. Only the mapped fields are decoded. Missing x, y
    or z raises RadarFormatError naming it and the fields present; a malformed cloud raises ConversionError.
    An empty cloud gives 0 returns.
    """
    field_map = field_map or RadarFieldMap()
    header = getattr(msg, 'header', None)
    frame_id = str(getattr(header, 'frame_id', ''))
    source = f'radar PointCloud2 (frame {frame_id!r})'
    roles = field_map.resolve(pointcloud2_field_names(msg), source)
    records = read_points(msg, fields=list(dict.fromkeys(roles.values())))
    stamp_ns = stamp_to_ns(header) if header is not None else 0
    return radar_from_structured(records, field_map, frame_id, stamp_ns, drop_invalid, source)


def radar_to_pointcloud2(radar, header=None, types=None, fields=RADAR_ROLES):
    """
    Return a PointCloud2 of ``types`` (default rclpy) holding ``radar`` as float32 fields.

    ``fields`` lists the roles to write (names as the roles: x, y, z, rcs, v_radial, vx, vy) or maps role ->
    field name (e.g. ``{'x': 'x', 'y': 'y', 'z': 'z', 'vx': 'vx_comp'}``); x, y, z are always written.
    ``header`` defaults to the radar's own stamp and frame id.
    """
    types = types or ros_message_types()
    names = dict(fields) if isinstance(fields, dict) else {role: role for role in fields}
    unknown = sorted(set(names) - set(RADAR_ROLES))
    if unknown:
        raise RadarFormatError(f'radar PointCloud2: unknown role(s) {unknown}; roles are {list(RADAR_ROLES)}')
    values = {'x': radar.xyz[:, 0], 'y': radar.xyz[:, 1], 'z': radar.xyz[:, 2], 'rcs': radar.rcs,
              'v_radial': radar.v_radial, 'vx': radar.vxy[:, 0], 'vy': radar.vxy[:, 1]}
    columns = {}
    for role in RADAR_ROLES:
        if role in names or role in ('x', 'y', 'z'):
            columns[names.get(role, role)] = np.ascontiguousarray(values[role], dtype=np.float32)
    if len(columns) != len(set(names) | {'x', 'y', 'z'}):
        raise RadarFormatError(f'radar PointCloud2: two roles map to one field name in {names}')
    if header is None:
        header = make_header(types, radar.stamp_ns, radar.frame_id)
    # is_dense describes the positions only: vx/vy are NaN by design where a sensor gives no velocity.
    dense = bool(np.all(np.isfinite(radar.xyz)))
    return numpy_to_pointcloud2(columns, convert_header(types, header), types, is_dense=dense)
