"""
Procedural layout of one drive from ``(seed, drive index)``.

Road, buildings, parked and moving vehicles, pedestrians, poles, signs, trees, the ego path, the sensor rig and
the look (sun, weather).

Sizes vary a lot on purpose (small cars to lorries, children to tall adults, camera height and pitch per drive),
so that an object's apparent size in the image does not give its distance away and radar carries information
the image lacks. Every kind of content draws from its own random stream, so switching one density or the
weather does not move anything else.
"""

import math

import numpy as np

from rcdepth_ros.data.synthetic.road import Road
from rcdepth_ros.data.synthetic.scene import (
    BOX, BUILDING, camera_mount, CYLINDER, Drive, EgoMotion, Look, make_transform, Part, PEDESTRIAN, POLE, Rig,
    rotation_z, SIGN, SPHERE, Thing, TREE, VEHICLE)

FRAME_RATE = 10.0
LOOKAHEAD = 40.0
PAINTS = [((0.92, 0.92, 0.9), 3), ((0.08, 0.08, 0.09), 3), ((0.62, 0.63, 0.65), 3), ((0.35, 0.36, 0.38), 2),
          ((0.62, 0.08, 0.07), 1), ((0.1, 0.2, 0.5), 1), ((0.05, 0.1, 0.25), 1), ((0.15, 0.32, 0.18), 0.5),
          ((0.7, 0.62, 0.45), 0.5), ((0.85, 0.55, 0.1), 0.3)]
FACADES = [(0.72, 0.68, 0.6), (0.62, 0.36, 0.28), (0.82, 0.8, 0.76), (0.55, 0.55, 0.56), (0.78, 0.7, 0.52),
           (0.5, 0.42, 0.36), (0.86, 0.84, 0.8), (0.65, 0.6, 0.68)]
CLOTHES = [(0.1, 0.1, 0.12), (0.7, 0.1, 0.1), (0.15, 0.25, 0.55), (0.85, 0.85, 0.82), (0.3, 0.45, 0.3),
           (0.55, 0.45, 0.3), (0.9, 0.7, 0.2), (0.4, 0.4, 0.42)]
SKINS = [(0.85, 0.68, 0.56), (0.62, 0.45, 0.34), (0.4, 0.28, 0.2), (0.92, 0.78, 0.68)]


def _stream(config, drive_index, name):
    """Return the random generator of one kind of content of one drive."""
    key = sum((i + 1) * ord(ch) for i, ch in enumerate(name))
    return np.random.default_rng([int(config.seed), int(drive_index), key])


def _paint(rng):
    weights = np.array([w for _, w in PAINTS])
    return PAINTS[rng.choice(len(PAINTS), p=weights / weights.sum())][0]


def vehicle_parts(rng, kind, color, lit=False):
    """
    Return (parts, length, width, height, rcs_dbsm) of a car, SUV, van or lorry, with random dimensions.

    ``lit``: head and tail lights on (moving vehicles).
    """
    lit = 1.0 if lit else 0.0
    if kind in ('car', 'suv'):
        length = rng.uniform(3.6, 5.0) if kind == 'car' else rng.uniform(4.3, 5.1)
        width = rng.uniform(1.65, 1.9) if kind == 'car' else rng.uniform(1.8, 2.0)
        body = rng.uniform(0.7, 1.0) if kind == 'car' else rng.uniform(0.95, 1.2)
        house = rng.uniform(0.42, 0.65) if kind == 'car' else rng.uniform(0.55, 0.75)
        wheel = rng.uniform(0.3, 0.34) if kind == 'car' else rng.uniform(0.34, 0.4)
        cabin_len = length * rng.uniform(0.45, 0.58)
        cabin_x = rng.uniform(-0.25, 0.0) * length * 0.3
        parts = [Part(BOX, (0.0, 0.0, body / 2), (length / 2, width / 2, body / 2), 'vehicle_body', color,
                      (wheel, length / 2 - 0.85, -length / 2 + 0.8, lit)),
                 Part(BOX, (cabin_x, 0.0, body + house / 2), (cabin_len / 2, width / 2 - 0.09, house / 2), 'cabin',
                      color)]
        height = body + house
        rcs = rng.normal(10.0, 3.0) + (2.0 if kind == 'suv' else 0.0)
    elif kind == 'van':
        length, width = rng.uniform(4.8, 6.0), rng.uniform(1.9, 2.1)
        body, height, wheel = rng.uniform(0.9, 1.05), rng.uniform(2.1, 2.6), rng.uniform(0.33, 0.38)
        parts = [Part(BOX, (0.0, 0.0, body / 2), (length / 2, width / 2, body / 2), 'vehicle_body', color,
                      (wheel, length / 2 - 0.9, -length / 2 + 1.0, lit)),
                 Part(BOX, (0.0, 0.0, (body + height) / 2), (length / 2, width / 2, (height - body) / 2),
                      'van_upper', color)]
        rcs = rng.normal(15.0, 3.0)
    else:
        cab_len, box_len = rng.uniform(1.9, 2.4), rng.uniform(4.5, 8.5)
        length, width = cab_len + box_len + 0.3, rng.uniform(2.3, 2.55)
        height, wheel = rng.uniform(3.0, 3.9), rng.uniform(0.45, 0.52)
        cab_body = 1.5
        cab_top = min(height - 0.3, 2.9)
        front = length / 2
        parts = [Part(BOX, (front - cab_len / 2, 0.0, cab_body / 2), (cab_len / 2, width / 2, cab_body / 2),
                      'vehicle_body', color, (wheel, cab_len / 2 - 0.75, -10.0, lit)),
                 Part(BOX, (front - cab_len / 2, 0.0, (cab_body + cab_top) / 2),
                      (cab_len / 2, width / 2 - 0.05, (cab_top - cab_body) / 2), 'cabin', color),
                 Part(BOX, (-length / 2 + box_len / 2, 0.0, height / 2), (box_len / 2, width / 2, height / 2),
                      'cargo', tuple(rng.uniform(0.55, 0.95, 3)), (wheel, box_len / 2 - 1.1, -box_len / 2 + 1.2, lit))]
        rcs = rng.normal(20.0, 3.0)
    return parts, length, width, height, float(rcs)


def _vehicle_kind(rng):
    return rng.choice(['car', 'suv', 'van', 'lorry'], p=[0.6, 0.22, 0.12, 0.06])


def make_vehicle(rng, s, d, speed=0.0, yaw=0.0, kind=None, color=None):
    """Return a vehicle Thing of random kind, size and colour at road coordinates (s, d)."""
    kind = kind or _vehicle_kind(rng)
    parts, length, width, height, rcs = vehicle_parts(rng, kind, color or _paint(rng), lit=speed != 0)
    return Thing(VEHICLE, float(s), float(d), parts, 0.0, float(yaw), float(speed), rcs,
                 radius=0.5 * math.hypot(length, width), label=str(kind), size=(length, width, height))


def make_building(rng, s, facade_d, side, width, key, ground_z):
    """Return a building whose facade lies at lateral offset ``facade_d`` on ``side`` (+1 left, -1 right)."""
    floor_h = rng.uniform(2.9, 3.6)
    floors = int(rng.integers(2, 9))
    ground_h = rng.uniform(3.6, 4.6)
    height = ground_h + (floors - 1) * floor_h + rng.uniform(0.4, 1.2)
    depth = rng.uniform(10.0, 20.0)
    col_w = rng.uniform(2.4, 3.8)
    params = (floor_h, col_w, rng.uniform(0.35, 0.7), rng.uniform(0.4, 0.62), ground_h, float(key))
    color = FACADES[int(rng.integers(len(FACADES)))]
    color = tuple(float(np.clip(c * rng.uniform(0.9, 1.1), 0, 1)) for c in color)
    part = Part(BOX, (0.0, side * depth / 2, height / 2), (width / 2, depth / 2, height / 2), 'building', color,
                params)
    return Thing(BUILDING, float(s), float(facade_d), [part], ground_z, 0.0, 0.0, float(rng.normal(2.0, 3.0)),
                 radius=0.5 * math.hypot(width, depth) + depth / 2, label='building')


def make_street_light(rng, s, d, side, ground_z):
    """Return a street light: pole, an arm reaching over the road, a lamp head."""
    height = rng.uniform(6.0, 9.0)
    reach = rng.uniform(1.2, 2.2)
    grey = tuple(rng.uniform(0.4, 0.6) * np.array([1.0, 1.02, 1.05]))
    parts = [Part(CYLINDER, (0.0, 0.0, height / 2), (0.09, 0.09, height / 2), 'metal', grey),
             Part(BOX, (0.0, -side * reach / 2, height - 0.05), (0.05, reach / 2, 0.05), 'metal', grey),
             Part(BOX, (0.0, -side * (reach - 0.2), height - 0.15), (0.18, 0.3, 0.08), 'lamp', grey)]
    return Thing(POLE, float(s), float(d), parts, ground_z, 0.0, 0.0, float(rng.normal(6.0, 2.0)),
                 radius=reach + 0.5, label='street_light')


def make_sign(rng, s, d, ground_z):
    """Return a traffic sign: a thin pole with a square plate facing oncoming traffic (-x)."""
    height = rng.uniform(2.0, 2.6)
    color = [(0.75, 0.08, 0.08), (0.1, 0.25, 0.65), (0.95, 0.75, 0.1)][int(rng.integers(3))]
    size = rng.uniform(0.25, 0.4)
    parts = [Part(CYLINDER, (0.0, 0.0, height / 2), (0.04, 0.04, height / 2), 'metal', (0.6, 0.6, 0.62)),
             Part(BOX, (-0.05, 0.0, height + size), (0.015, size, size), 'sign', color)]
    thing = Thing(SIGN, float(s), float(d), parts, ground_z, math.pi, 0.0, float(rng.normal(8.0, 2.0)),
                  radius=0.8, label='sign')
    return thing


def make_tree(rng, s, d, ground_z):
    """Return a tree: trunk and a round crown."""
    trunk = rng.uniform(1.8, 3.2)
    crown = rng.uniform(1.2, 2.6)
    r = rng.uniform(0.1, 0.2)
    green = tuple(np.array([0.2, 0.38, 0.14]) * rng.uniform(0.7, 1.2))
    parts = [Part(CYLINDER, (0.0, 0.0, trunk / 2), (r, r, trunk / 2), 'bark', (0.33, 0.24, 0.16)),
             Part(SPHERE, (0.0, 0.0, trunk + 0.7 * crown), (crown, crown, crown), 'foliage', green)]
    return Thing(TREE, float(s), float(d), parts, ground_z, 0.0, 0.0, float(rng.normal(-2.0, 2.0)),
                 radius=crown + 0.2, label='tree')


def make_pedestrian(rng, s, d, speed, ground_z):
    """Return a pedestrian (child to tall adult): body cylinder with clothes, head sphere."""
    height = rng.uniform(1.1, 1.45) if rng.uniform() < 0.12 else rng.uniform(1.5, 1.95)
    body = height * 0.86
    radius = rng.uniform(0.17, 0.26) * height / 1.75
    head_r = 0.065 * height
    top = CLOTHES[int(rng.integers(len(CLOTHES)))]
    legs = CLOTHES[int(rng.integers(len(CLOTHES)))]
    skin = SKINS[int(rng.integers(len(SKINS)))]
    hair = tuple(np.array([0.12, 0.09, 0.07]) * rng.uniform(0.5, 3.0))
    waist = body * 0.05                     # local z of the waist (cylinder centred at body / 2)
    parts = [Part(CYLINDER, (0.0, 0.0, body / 2), (radius, radius, body / 2), 'pedestrian', top,
                  (waist,) + tuple(legs)),
             Part(SPHERE, (0.0, 0.0, body + head_r * 0.85), (head_r, head_r, head_r), 'head', skin, hair)]
    yaw = 0.0 if speed >= 0 else math.pi
    return Thing(PEDESTRIAN, float(s), float(d), parts, ground_z, yaw, float(speed),
                 float(rng.normal(-4.0, 2.5)), radius=0.5, label='pedestrian',
                 size=(2.0 * radius, 2.0 * radius, body + 2.0 * head_r))


def _positions(rng, start, stop, per_100m):
    count = rng.poisson(max(stop - start, 0.0) * per_100m / 100.0)
    return np.sort(rng.uniform(start, stop, count))


def generate_drive(config, drive_index, split_key=0):
    """
    Return the Drive number ``drive_index`` of ``config``: a pure function of the seed, the index and the split.

    ``split_key`` separates data set splits: drives of different keys share nothing random.
    """
    drive_index = int(drive_index)
    index = drive_index
    drive_index = drive_index + 1_000_003 * int(split_key)
    duration = config.frames_per_drive / FRAME_RATE
    rng = _stream(config, drive_index, 'road')
    speed = rng.uniform(*config.speed_range)
    s_min = -30.0
    s_max = speed * duration + min(config.max_depth, config.radar_max_range) + LOOKAHEAD
    curvature = 0.0
    if rng.uniform() >= config.straight_probability and config.max_curvature > 0:
        curvature = rng.uniform(0.15, 1.0) * config.max_curvature * rng.choice([-1.0, 1.0])
        # Keep the whole drive on less than a half turn so road coordinates stay unique.
        curvature = float(np.clip(curvature, -2.5 / (s_max - s_min), 2.5 / (s_max - s_min)))
    lanes = int(rng.choice([1, 2], p=[0.6, 0.4]))
    road = Road(curvature=curvature, lanes_per_direction=lanes, lane_width=rng.uniform(3.1, 3.7),
                parking_right=2.3 if rng.uniform() < 0.75 else 0.0,
                parking_left=2.3 if rng.uniform() < 0.5 else 0.0,
                kerb_height=rng.uniform(0.1, 0.16), sidewalk_width=rng.uniform(2.0, 4.5),
                centre_line_solid=bool(rng.uniform() < 0.3))
    ego_lane = int(rng.integers(lanes))
    ego = EgoMotion(s0=0.0, d=road.lane_centre(ego_lane), speed=speed,
                    wander_amplitude=rng.uniform(0.0, 0.25), wander_period=rng.uniform(5.0, 12.0),
                    pitch_amplitude=math.radians(config.pitch_jitter_deg), phases=tuple(rng.uniform(0, 6.3, 4)),
                    bounce_amplitude=rng.uniform(0.0, 0.02))
    rig = _rig(config, _stream(config, drive_index, 'rig'))
    things = []
    things += _buildings(config, drive_index, road, s_min, s_max)
    things += _street_furniture(config, drive_index, road, s_min, s_max)
    things += _parked(config, drive_index, road, s_min, s_max)
    things += _traffic(config, drive_index, road, ego, ego_lane, s_min, s_max, duration)
    things += _pedestrians(config, drive_index, road, s_min, s_max)
    return Drive(index, road, things, ego, rig, _look(config, drive_index))


def _rig(config, rng):
    K = np.asarray(config.intrinsics_matrix, dtype=np.float64)
    cam_h = rng.uniform(*config.camera_height_range)
    pitch = math.radians(rng.uniform(*config.camera_pitch_range_deg))
    T_cam = camera_mount(1.6, rng.uniform(-0.1, 0.1), cam_h, pitch)
    T_lidar = make_transform(rotation_z(math.radians(rng.uniform(-0.5, 0.5))),
                             (1.2, 0.0, cam_h + rng.uniform(0.3, 0.5)))
    T_radar = make_transform(rotation_z(math.radians(rng.uniform(-1.0, 1.0))),
                             (3.7, rng.uniform(-0.15, 0.15), rng.uniform(0.4, 0.7)))
    return Rig(K, config.width, config.height, T_cam, T_lidar, T_radar)


def _look(config, drive_index):
    rng = _stream(config, drive_index, 'look')
    look = Look(sun_azimuth=rng.uniform(0, 2 * math.pi), sun_elevation=math.radians(rng.uniform(15, 65)),
                asphalt=rng.uniform(0.24, 0.4), haze_distance=rng.uniform(500.0, 1500.0))
    weather = _stream(config, drive_index, 'weather')
    look.fog = bool(weather.uniform() < config.fog_probability)
    look.fog_visibility = float(weather.uniform(*config.fog_visibility_range_m))
    look.night = bool(weather.uniform() < config.night_probability)
    return look


def _buildings(config, drive_index, road, s_min, s_max):
    rng = _stream(config, drive_index, 'buildings')
    things = []
    for side in (-1, 1):
        kerb = road.half_width_left if side > 0 else road.half_width_right
        setback = rng.uniform(0.0, 4.0)
        line = kerb + road.sidewalk_width + setback + 0.4
        if side > 0:
            road.facade_left = line
        else:
            road.facade_right = line
        s = s_min - 10.0
        while s < s_max:
            width = rng.uniform(8.0, 26.0)
            if rng.uniform() < config.building_gap_probability:
                s += rng.uniform(3.0, 14.0)
                continue
            facade = side * (kerb + road.sidewalk_width + setback + rng.uniform(0.0, 0.8))
            things.append(make_building(rng, s + width / 2, facade, side, width, len(things) + 100 * side,
                                        road.kerb_height))
            s += width + rng.uniform(0.0, 0.6)
    return things


def _street_furniture(config, drive_index, road, s_min, s_max):
    rng = _stream(config, drive_index, 'furniture')
    things = []
    for side in (-1, 1):
        kerb = road.half_width_left if side > 0 else road.half_width_right
        s = s_min + rng.uniform(0, config.pole_spacing_m)
        while s < s_max:
            things.append(make_street_light(rng, s, side * (kerb + 0.45), side, road.kerb_height))
            s += config.pole_spacing_m * rng.uniform(0.85, 1.15)
        for s in _positions(rng, s_min, s_max, 2.0):
            things.append(make_sign(rng, s, side * (kerb + 0.35), road.kerb_height))
        if road.sidewalk_width > 2.5:
            for s in _positions(rng, s_min, s_max, config.trees_per_100m):
                things.append(make_tree(rng, s, side * (kerb + road.sidewalk_width - 0.9), road.kerb_height))
    # A sign stands on the right for our direction (plate facing us) or on the left for the others.
    for thing in things:
        if thing.kind == SIGN and thing.d > 0:
            thing.yaw = 0.0
    return things


def _parked(config, drive_index, road, s_min, s_max):
    rng = _stream(config, drive_index, 'parked')
    things = []
    for side, width in ((-1, road.parking_right), (1, road.parking_left)):
        if width <= 0:
            continue
        d = side * (road.carriageway + width / 2 + rng.uniform(-0.1, 0.15))
        s = s_min
        mean_gap = max(100.0 / max(config.parked_vehicles_per_100m, 1e-3) - 4.5, 0.5)
        while s < s_max:
            s += rng.exponential(mean_gap) + 0.6
            vehicle = make_vehicle(rng, s, d, yaw=0.0 if side < 0 else math.pi,
                                   kind=rng.choice(['car', 'suv', 'van'], p=[0.68, 0.22, 0.1]))
            vehicle.s += vehicle.radius
            vehicle.d += side * rng.uniform(-0.1, 0.1)
            things.append(vehicle)
            s = vehicle.s + vehicle.radius
    return [t for t in things if t.s < s_max]


def _traffic(config, drive_index, road, ego, ego_lane, s_min, s_max, duration):
    rng = _stream(config, drive_index, 'traffic')
    things = []
    for side in (-1, 1):
        for lane in range(road.lanes_per_direction):
            d = road.lane_centre(lane, side)
            if side < 0:
                speed = ego.speed * rng.uniform(0.8, 1.35) + rng.uniform(0.0, 1.0)
            else:
                speed = -rng.uniform(6.0, 14.0)
            start, stop = s_min, s_max
            if side > 0:
                stop = s_max + abs(speed) * duration
            if side < 0 and lane == ego_lane:
                # Ahead of the ego only, far enough that a slower lane is never caught up with.
                start = 10.0 + max(0.0, (ego.speed - speed) * duration) + 5.0
            elif side < 0:
                start = s_min - speed * duration
            s = start
            while True:
                s += rng.exponential(100.0 / max(config.moving_vehicles_per_100m, 1e-3)) + 8.0
                if s > stop:
                    break
                vehicle = make_vehicle(rng, s, d, speed=speed, yaw=0.0 if side < 0 else math.pi)
                vehicle.s += vehicle.radius
                things.append(vehicle)
                s = vehicle.s + vehicle.radius
    return things


def _pedestrians(config, drive_index, road, s_min, s_max):
    rng = _stream(config, drive_index, 'pedestrians')
    things = []
    for side in (-1, 1):
        kerb = road.half_width_left if side > 0 else road.half_width_right
        for s in _positions(rng, s_min, s_max, config.pedestrians_per_100m / 2.0):
            d = side * (kerb + rng.uniform(0.6, max(road.sidewalk_width - 0.5, 0.7)))
            speed = 0.0 if rng.uniform() < 0.4 else rng.uniform(0.8, 1.7) * rng.choice([-1.0, 1.0])
            things.append(make_pedestrian(rng, s, d, speed, road.kerb_height))
    return things
