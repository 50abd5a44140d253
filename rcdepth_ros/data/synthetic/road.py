"""
The road of one drive: a constant-curvature arc on flat ground, its cross-section, and road coordinates.

World frame: x forward at the start, y left, z up; the road centreline starts at the origin heading +x and
turns left for positive ``curvature`` (1/m). Road coordinates: ``s`` arc length along the centreline, ``d``
lateral offset, positive to the left. One formula covers straight roads (curvature 0) and arcs, and stays
accurate for very large radii because it never subtracts two large numbers.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass
class Road:
    """
    A road cross-section swept along an arc: lanes and parking strips on asphalt, kerbs, raised sidewalks.

    The asphalt spans ``|d| <= half_width``; beyond it the ground is ``kerb_height`` higher (sidewalk up to
    ``half_width + sidewalk_width``, verge beyond). Lane ``i`` (0 = next to the centre line) of the right-hand
    carriageway is centred at ``d = -(i + 0.5) * lane_width``.
    """

    curvature: float = 0.0
    lanes_per_direction: int = 1
    lane_width: float = 3.5
    parking_right: float = 0.0
    parking_left: float = 0.0
    kerb_height: float = 0.12
    sidewalk_width: float = 3.0
    centre_line_solid: bool = False
    # Lateral distance of the building line (facades) on each side; 0 where there is none (radar multipath).
    facade_left: float = 0.0
    facade_right: float = 0.0

    @property
    def carriageway(self):
        """Return the lateral extent of the driven lanes on each side of the centre line."""
        return self.lanes_per_direction * self.lane_width

    @property
    def half_width_right(self):
        """Return the distance from the centre line to the right kerb."""
        return self.carriageway + self.parking_right

    @property
    def half_width_left(self):
        """Return the distance from the centre line to the left kerb."""
        return self.carriageway + self.parking_left

    def lane_centre(self, lane, side=-1):
        """Return ``d`` of lane ``lane`` (0 next to the centre line) on the right (-1) or left (+1) side."""
        return side * (lane + 0.5) * self.lane_width

    def pose(self, s, d=0.0):
        """Return world ``x, y, heading`` of road coordinates ``(s, d)`` (scalars or arrays)."""
        s = np.asarray(s, dtype=np.float64)
        d = np.asarray(d, dtype=np.float64)
        k = self.curvature
        heading = k * s
        if k == 0.0:
            x, y = s, np.zeros_like(s)
        else:
            x, y = np.sin(heading) / k, (1.0 - np.cos(heading)) / k
        return x - d * np.sin(heading), y + d * np.cos(heading), heading

    def lateral(self, x, y):
        """Return ``d`` of world points (any float dtype; computed without cancellation)."""
        k = self.curvature
        if k == 0.0:
            return y
        kx, ky = k * x, k * y
        return (2.0 * y - k * (x * x + y * y)) / (1.0 + np.sqrt(kx * kx + (1.0 - ky) * (1.0 - ky)))

    def along(self, x, y):
        """Return ``s`` of world points."""
        k = self.curvature
        if k == 0.0:
            return x
        return np.arctan2(k * x, 1.0 - k * y) / k

    def crossing(self, ox, oy, vx, vy, d_target):
        """
        Return the ray parameter where ``(ox, oy) + t (vx, vy)`` reaches lateral offset ``d_target``.

        Arrays broadcast; float64 inside. Of the two intersections with the offset circle the one nearer to the
        ray origin is returned (the caller knows the ray crosses the offset exactly once in its interval).
        """
        ox, oy, vx, vy, d_target = (np.asarray(a, dtype=np.float64) for a in (ox, oy, vx, vy, d_target))
        k = self.curvature
        if k == 0.0:
            with np.errstate(divide='ignore', invalid='ignore'):
                return (d_target - oy) / vy
        # Offset curve: circle about (0, 1/k) with radius |1/k - d|.
        cy = 1.0 / k
        radius = np.abs(cy - d_target)
        qx, qy = ox, oy - cy
        a = vx * vx + vy * vy
        b = qx * vx + qy * vy
        c = (qx * qx + qy * qy) - radius * radius
        disc = np.maximum(b * b - a * c, 0.0)
        root = np.sqrt(disc)
        t1 = (-b - root) / a
        t2 = (-b + root) / a
        return np.where(t1 >= 0, t1, t2)

    def frame(self, s, d, z=0.0, yaw=0.0):
        """Return the 4x4 world transform of a body at road coordinates ``(s, d)``, height ``z``, extra ``yaw``."""
        x, y, heading = self.pose(s, d)
        c, s_ = np.cos(heading + yaw), np.sin(heading + yaw)
        T = np.eye(4)
        T[:3, :3] = [[c, -s_, 0.0], [s_, c, 0.0], [0.0, 0.0, 1.0]]
        T[:3, 3] = (float(x), float(y), float(z))
        return T
