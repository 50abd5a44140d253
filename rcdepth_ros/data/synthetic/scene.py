"""
What a drive is made of.

Things (vehicles, buildings, poles, ...) built from box / cylinder / sphere parts, the ego motion, the sensor
rig, and the world-frame primitives of one instant.

A drive is fixed data; ``Drive.primitives(t)`` and ``Drive.ego_pose(t)`` are pure functions of time, so any frame
can be produced in any order. Frames: world (x forward at the start, y left, z up), ``base_link`` on the ground
under the rear axle (x forward, y left, z up), sensors as in ``Rig``.
"""

import dataclasses
import math
import typing

import numpy as np

from rcdepth_ros.data.synthetic.road import Road

BOX, CYLINDER, SPHERE = 0, 1, 2

# Object classes (the radar model and the tests use them).
VEHICLE, BUILDING, POLE, PEDESTRIAN, TREE, SIGN = 'vehicle', 'building', 'pole', 'pedestrian', 'tree', 'sign'
KINDS = (VEHICLE, BUILDING, POLE, PEDESTRIAN, TREE, SIGN)


def rotation_z(angle):
    """Return the 3x3 rotation about z by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def rotation_y(angle):
    """Return the 3x3 rotation about y by ``angle`` radians."""
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def rigid_inverse(T):
    """Return the inverse of a 4x4 rigid transform (rotation transposed; no LAPACK call)."""
    R = T[:3, :3]
    inv = np.eye(4)
    inv[:3, :3] = R.T
    inv[:3, 3] = -R.T @ T[:3, 3]
    return inv


def make_transform(R=None, t=(0.0, 0.0, 0.0)):
    """Return the 4x4 transform with rotation ``R`` (identity if None) and translation ``t``."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    T[:3, 3] = t
    return T


@dataclasses.dataclass
class Part:
    """
    One primitive of a thing, in the thing's frame (x forward, y left, z up, origin on the ground).

    ``half`` is the half size (box), ``(radius, radius, half height)`` (cylinder along local z) or
    ``(radius,) * 3`` (sphere). ``material`` names the shader; ``color`` its base colour (RGB in [0, 1]);
    ``params`` shader parameters (window grid, wheel positions, ...).
    """

    shape: int
    centre: typing.Tuple[float, float, float]
    half: typing.Tuple[float, float, float]
    material: str
    color: typing.Tuple[float, float, float] = (0.5, 0.5, 0.5)
    params: typing.Tuple[float, ...] = ()
    rotation: typing.Optional[np.ndarray] = None

    def local_transform(self):
        """Return T_thing_from_part."""
        return make_transform(self.rotation, self.centre)


@dataclasses.dataclass
class Thing:
    """
    A physical object on the road: its parts, where it stands in road coordinates, and how it moves.

    It stands at ``(s + speed * t, d)`` on ground height ``z`` with ``yaw`` relative to the road tangent
    (``pi`` = facing against increasing ``s``); ``speed`` is signed along ``s``. ``rcs_dbsm`` is its overall radar
    cross-section.
    """

    kind: str
    s: float
    d: float
    parts: typing.List[Part]
    z: float = 0.0
    yaw: float = 0.0
    speed: float = 0.0
    rcs_dbsm: float = 0.0
    radius: float = 1.0
    label: str = ''
    size: typing.Optional[typing.Tuple[float, float, float]] = None   # (length, width, height) of annotated things

    def position_s(self, t):
        """Return the arc length where the thing stands at time ``t``."""
        return self.s + self.speed * t


@dataclasses.dataclass
class Rig:
    """
    The sensors on the ego vehicle: camera intrinsics and each sensor's pose in ``base_link``.

    The camera frame is optical (x right, y down, z forward); radar and lidar frames are x forward, y left, z up.
    """

    K: np.ndarray
    width: int
    height: int
    T_base_from_camera: np.ndarray
    T_base_from_lidar: np.ndarray
    T_base_from_radar: np.ndarray

    def T_camera_from(self, name):
        """Return T_camera_from_<name> for 'lidar', 'radar' or 'base_link'."""
        inv = rigid_inverse(self.T_base_from_camera)
        if name == 'base_link':
            return inv
        return inv @ {'lidar': self.T_base_from_lidar, 'radar': self.T_base_from_radar}[name]


# Optical camera axes in a body frame (x forward, y left, z up): x right = -y, y down = -z, z forward = x.
R_BODY_FROM_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


def camera_mount(x, y, z, pitch):
    """Return T_base_from_camera for a forward camera at (x, y, z) looking down by ``pitch`` radians."""
    return make_transform(rotation_y(pitch) @ R_BODY_FROM_OPTICAL, (x, y, z))


@dataclasses.dataclass
class EgoMotion:
    """
    The ego vehicle's path: a lane of the road at a constant speed, a slow lateral wander, body pitch and bounce.

    Wander, pitch and bounce are sums of sines with drive-specific phases, so the pose is a pure function of t.
    """

    s0: float
    d: float
    speed: float
    wander_amplitude: float = 0.15
    wander_period: float = 7.0
    pitch_amplitude: float = 0.0
    phases: typing.Tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    bounce_amplitude: float = 0.01

    def road_position(self, t):
        """Return ``(s, d)`` of base_link at time ``t``."""
        w = 2.0 * math.pi / self.wander_period
        return self.s0 + self.speed * t, self.d + self.wander_amplitude * math.sin(w * t + self.phases[0])

    def pose(self, road, t):
        """Return T_world_from_base at time ``t``."""
        s, d = self.road_position(t)
        w = 2.0 * math.pi / self.wander_period
        d_rate = self.wander_amplitude * w * math.cos(w * t + self.phases[0])
        yaw = math.atan2(d_rate, max(self.speed, 0.1))
        pitch = self.pitch_amplitude * (0.7 * math.sin(2.0 * math.pi * 0.9 * t + self.phases[1])
                                        + 0.3 * math.sin(2.0 * math.pi * 2.3 * t + self.phases[2]))
        bounce = self.bounce_amplitude * math.sin(2.0 * math.pi * 1.7 * t + self.phases[3])
        T = road.frame(s, d, bounce, yaw)
        T[:3, :3] = T[:3, :3] @ rotation_y(pitch)
        return T


@dataclasses.dataclass
class Look:
    """Appearance settings of a drive: sun, sky, asphalt tone, haze, weather."""

    sun_azimuth: float = 0.5
    sun_elevation: float = 0.7
    asphalt: float = 0.32
    haze_distance: float = 900.0
    fog: bool = False
    fog_visibility: float = 80.0
    night: bool = False

    @property
    def sun_world(self):
        """Return the unit vector towards the sun in the world frame."""
        ce = math.cos(self.sun_elevation)
        return np.array([ce * math.cos(self.sun_azimuth), ce * math.sin(self.sun_azimuth),
                         math.sin(self.sun_elevation)])


@dataclasses.dataclass
class Primitive:
    """A part placed in the world at one instant, with what the sensors need to know about its thing."""

    shape: int
    T_world: np.ndarray
    half: np.ndarray
    material: str
    color: tuple
    params: tuple
    kind: str
    instance: int
    velocity: np.ndarray
    rcs_dbsm: float
    T_thing: np.ndarray = None


@dataclasses.dataclass
class Drive:
    """Everything fixed for one drive: index, road, things, ego motion, rig and look."""

    index: int
    road: Road
    things: typing.List[Thing]
    ego: EgoMotion
    rig: Rig
    look: Look
    _parts: tuple = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def ego_pose(self, t):
        """Return T_world_from_base at time ``t``."""
        return self.ego.pose(self.road, t)

    def ego_velocity(self, t, point_in_base=(0.0, 0.0, 0.0), dt=1e-3):
        """Return the world velocity (3,) of a point fixed to the ego vehicle (central difference in time)."""
        p = np.append(np.asarray(point_in_base, dtype=np.float64), 1.0)
        ahead = (self.ego_pose(t + dt) @ p)[:3]
        behind = (self.ego_pose(t - dt) @ p)[:3]
        return (ahead - behind) / (2.0 * dt)

    def _table(self):
        """Return the drive's things and parts as arrays (built once): motion, and each part's frame and data."""
        if self._parts is None:
            things = self.things
            motion = np.array([[th.s, th.d, th.z, th.yaw, th.speed, th.radius] for th in things]).reshape(-1, 6)
            parts = [(i, part) for i, th in enumerate(things) for part in th.parts]
            owner = np.array([i for i, _ in parts], dtype=np.int64)
            local = np.array([part.local_transform() for _, part in parts]).reshape(-1, 4, 4)
            halves = [np.asarray(part.half, dtype=np.float64) for _, part in parts]
            self._parts = (motion, owner, local, parts, halves)
        return self._parts

    def thing_poses(self, t, indices=None):
        """Return T_world_from_thing (K, 4, 4) and world velocities (K, 3) of things ``indices`` (all if None)."""
        motion = self._table()[0]
        if indices is not None:
            motion = motion[np.asarray(indices, dtype=np.int64)]
        s0, d, z, yaw, speed = motion[:, 0], motion[:, 1], motion[:, 2], motion[:, 3], motion[:, 4]
        s = s0 + speed * t
        x, y, heading = self.road.pose(s, d)
        angle = heading + yaw
        T = np.zeros((s.shape[0], 4, 4))
        T[:, 0, 0] = T[:, 1, 1] = np.cos(angle)
        T[:, 1, 0] = np.sin(angle)
        T[:, 0, 1] = -T[:, 1, 0]
        T[:, 2, 2] = T[:, 3, 3] = 1.0
        T[:, 0, 3], T[:, 1, 3], T[:, 2, 3] = x, y, z
        # A point moving along the arc offset by d: its speed is scaled by (1 - curvature * d).
        along = speed * (1.0 - self.road.curvature * d)
        velocity = np.stack([along * np.cos(heading), along * np.sin(heading), np.zeros_like(along)], axis=1)
        return T, velocity

    def primitives(self, t, s_window=None):
        """
        Return the world-frame primitives at time ``t``.

        ``s_window = (s_min, s_max)`` keeps only things whose arc-length position (widened by their radius) lies
        inside it, which is how frames skip the parts of a long drive that no sensor can see.
        """
        motion, owner, local, parts, halves = self._table()
        if not parts:
            return []
        s = motion[:, 0] + motion[:, 4] * t
        keep = np.ones(s.shape, dtype=bool)
        if s_window is not None:
            keep = (s >= s_window[0] - motion[:, 5]) & (s <= s_window[1] + motion[:, 5])
        shown = np.flatnonzero(keep)
        T_things, velocities = self.thing_poses(t, shown)
        position = np.full(s.shape[0], -1, dtype=np.int64)
        position[shown] = np.arange(shown.size)
        rows = np.flatnonzero(keep[owner])
        where = position[owner[rows]]
        T_world = np.matmul(T_things[where], local[rows])
        out = []
        for k, row in enumerate(rows.tolist()):
            instance, part = parts[row]
            thing = self.things[instance]
            at = where[k]
            out.append(Primitive(part.shape, T_world[k], halves[row], part.material, part.color, part.params,
                                 thing.kind, instance, velocities[at], thing.rcs_dbsm, T_things[at]))
        return out
