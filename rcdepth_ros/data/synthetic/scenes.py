"""
Hand-made drives with known geometry, for checks and for looking at one effect at a time.

``bare_drive`` is a straight, flat road with no jitter (camera pitch and height exactly as given), to which a test
adds the things it needs: a wall at a known distance (``wall``), a vehicle coming towards the ego vehicle, one
driving away (``layout.make_vehicle``), a pole. The world x axis is then the road's ``s``.
"""

import math

import numpy as np

from rcdepth_ros.data.synthetic.road import Road
from rcdepth_ros.data.synthetic.scene import (
    BOX, BUILDING, camera_mount, CYLINDER, Drive, EgoMotion, Look, make_transform, Part, POLE, Rig, Thing)

CAMERA_X = 1.6          # camera mounting point ahead of base_link
RADAR_X = 3.7


def bare_drive(config, things=(), speed=10.0, camera_height=1.5, pitch_deg=0.0, lanes=1, index=0, look=None):
    """Return a Drive on a straight road with ``things``; the ego vehicle drives the first right-hand lane."""
    road = Road(curvature=0.0, lanes_per_direction=lanes, lane_width=3.5, parking_right=2.3, parking_left=2.3,
                kerb_height=0.12, sidewalk_width=3.0, facade_left=12.0, facade_right=12.0)
    ego = EgoMotion(s0=0.0, d=road.lane_centre(0), speed=float(speed), wander_amplitude=0.0, pitch_amplitude=0.0,
                    bounce_amplitude=0.0)
    rig = Rig(np.asarray(config.intrinsics_matrix, dtype=np.float64), config.width, config.height,
              camera_mount(CAMERA_X, 0.0, camera_height, math.radians(pitch_deg)),
              make_transform(None, (1.2, 0.0, camera_height + 0.4)),
              make_transform(None, (RADAR_X, 0.0, 0.5)))
    return Drive(int(index), road, list(things), ego, rig, look or Look(sun_azimuth=2.5, sun_elevation=0.8))


def wall(s, d, width, height, thickness=0.3, z=0.0):
    """Return a wall whose near face is the world plane x = ``s``, centred at lateral offset ``d``."""
    part = Part(BOX, (thickness / 2.0, 0.0, height / 2.0), (thickness / 2.0, width / 2.0, height / 2.0), 'metal',
                (0.6, 0.6, 0.6))
    return Thing(BUILDING, float(s), float(d), [part], z, 0.0, 0.0, 2.0, radius=math.hypot(width, thickness),
                 label='wall')


def pole(s, d, height=6.0, radius=0.1, z=0.0):
    """Return a bare metal post, a vertical cylinder, standing at road coordinates ``s``, ``d``."""
    part = Part(CYLINDER, (0.0, 0.0, height / 2.0), (radius, radius, height / 2.0), 'metal', (0.5, 0.5, 0.52))
    return Thing(POLE, float(s), float(d), [part], z, 0.0, 0.0, 6.0, radius=height, label='pole')
