"""
The automotive radar: a forward radar at the bumper with the character of a real one.

The radar frame is x forward, y left, z up. A coarse grid of beams is ray cast against the scene to find what the
radar can see (occlusion included). Each visible object then yields a random number of detections: its kind sets
the rate (vehicles several, poles and signs about one, buildings one or two, trees and pedestrians few), its
visible extent and the signal-to-noise ratio (RCS over range^4) scale it, so far and small objects are missed.
Detections sit on the object's visible surface, preferring surfaces that face the radar (specular). Then:

* RCS per return around the object's RCS (vehicles ~10 dBsm, lorries ~20, poles ~6, buildings ~2,
  pedestrians ~-4), plus noise;
* Doppler: radial velocity of the object relative to the radar (ego motion included), positive moving away;
  ``vxy`` is the ego-motion compensated radial velocity as x / y components (like nuScenes ``vx_comp``);
* measurement noise in range and azimuth, and poor elevation: the reported elevation is mostly flattened
  towards 0 and noisy (``radar_elevation_flatten``, ``radar_elevation_noise_deg``);
* clutter (``radar_clutter``): weak static returns from the road surface and a few false alarms anywhere;
* ghosts (``radar_ghosts``): multipath mirror images of vehicles behind the building line, and double-bounce
  returns at twice the range and twice the Doppler of near vehicles.

Weather does not enter: fog and night change only the camera image.
"""

import dataclasses

import numpy as np

from rcdepth_ros.data.synthetic.raycast import Caster, GROUND, SphericalGrid
from rcdepth_ros.data.synthetic.scene import BUILDING, PEDESTRIAN, POLE, rigid_inverse, SIGN, TREE, VEHICLE

KIND_NAMES = (VEHICLE, BUILDING, POLE, PEDESTRIAN, TREE, SIGN, 'clutter', 'noise', 'ghost')
KIND_CODE = {name: i for i, name in enumerate(KIND_NAMES)}
AZIMUTH_STEP_DEG = 0.5
ELEVATIONS_DEG = (-5.0, -2.5, 0.0, 2.5, 5.0, 8.0)
# Expected detections of a fully visible, well detectable object; hits for 63 % visibility; specular power.
RATE = {VEHICLE: 4.5, BUILDING: 1.6, POLE: 1.3, SIGN: 1.0, PEDESTRIAN: 1.2, TREE: 0.5}
VISIBLE_HITS = {VEHICLE: 6.0, BUILDING: 30.0, POLE: 1.5, SIGN: 1.5, PEDESTRIAN: 2.0, TREE: 4.0}
SPECULAR = {VEHICLE: 2.0, BUILDING: 6.0, POLE: 0.0, SIGN: 4.0, PEDESTRIAN: 0.0, TREE: 0.0}
# Detection: SNR (dB) = RCS - 40 log10(range) + RADAR_CONSTANT; probability is a logistic around THRESHOLD.
RADAR_CONSTANT = 92.0
THRESHOLD_DB = 12.0
MAX_DETECTION_PROBABILITY = 0.97
CLUTTER_RATE = 7.0
NOISE_RATE = 2.0
MIRROR_PROBABILITY = 0.12
DOUBLE_BOUNCE_PROBABILITY = 0.08
DOUBLE_BOUNCE_RANGE = 40.0


@dataclasses.dataclass
class RadarScan:
    """Detections of one radar cycle in the radar frame, with what produced each (for tests and drawing)."""

    xyz: np.ndarray         # (N, 3) float32, radar frame
    rcs: np.ndarray         # (N,) float32 dBsm
    v_radial: np.ndarray    # (N,) float32 m/s, positive moving away
    vxy: np.ndarray         # (N, 2) float32 compensated radial velocity, radar x / y components
    kind: np.ndarray        # (N,) int8 index into KIND_NAMES
    instance: np.ndarray    # (N,) int32 thing index of the drive, -1 for clutter / noise
    # Things of the drive the radar could see this cycle (detected or missed), for statistics.
    visible: np.ndarray = None

    def __len__(self):
        """Return the number of detections."""
        return self.xyz.shape[0]


def detection_probability(rcs_dbsm, distance):
    """Return the probability of detecting a return of ``rcs_dbsm`` at ``distance`` metres."""
    snr = np.asarray(rcs_dbsm) - 40.0 * np.log10(np.maximum(distance, 0.5)) + RADAR_CONSTANT
    return MAX_DETECTION_PROBABILITY / (1.0 + np.exp(-(snr - THRESHOLD_DB) / 2.5))


class RadarModel:
    """The beam grid of one configuration, and the detections of a frame."""

    def __init__(self, config):
        """Build the visibility grid over the radar's field of view."""
        self.config = config
        half = config.radar_fov_deg / 2.0
        count = int(round(2.0 * half / AZIMUTH_STEP_DEG)) + 1
        self.grid = SphericalGrid(np.radians(np.linspace(-half, half, count)), np.radians(ELEVATIONS_DEG))
        self.directions = self.grid.directions().reshape(-1, 3)

    def measure(self, drive, primitives, T_world_from_radar, v_radar_world, rng):
        """Return the RadarScan of one frame (``v_radar_world``: the radar's own velocity in the world frame)."""
        cfg = self.config
        T_radar_from_world = rigid_inverse(T_world_from_radar)
        R = T_radar_from_world[:3, :3]
        cast = Caster(self.grid, T_radar_from_world, max_range=cfg.radar_max_range,
                      want_cosine=True).run(drive.road, primitives)
        t = cast.t.ravel()
        index = cast.index.ravel()
        cosine = cast.cosine.ravel()
        points = self.directions * np.where(np.isfinite(t), t, 0.0)[:, None]
        instances = np.array([p.instance for p in primitives], dtype=np.int64)
        hit_rays = np.flatnonzero(index >= 0)
        owner = instances[index[hit_rays]] if hit_rays.size else np.zeros(0, np.int64)
        parts = [self._objects(primitives, index, hit_rays, owner, points, cosine, R, v_radar_world, rng)]
        if cfg.radar_clutter:
            parts.append(self._clutter(np.flatnonzero(index == GROUND), points, R, v_radar_world, rng))
        scan = _concatenate(parts)
        if cfg.radar_ghosts:
            scan = _concatenate([scan, self._ghosts(drive, scan, T_world_from_radar, rng)])
        scan = self._noisy(scan, rng)
        if len(scan) > cfg.radar_max_points:
            keep = np.sort(np.argsort(-scan.rcs, kind='stable')[:cfg.radar_max_points])
            scan = _select(scan, keep)
        scan.visible = np.unique(owner).astype(np.int32)
        return scan

    def _objects(self, primitives, index, hit_rays, owner, points, cosine, R, v_radar_world, rng):
        """
        Return the detections of every visible object at once.

        Per object: a Poisson number of detections (rate from its kind, visible extent and SNR), placed on
        distinct rays that hit it, drawn with probability proportional to a specular weight (weighted sampling
        without replacement by exponential keys: the ``count`` largest ``u ** (1 / w)`` of each object).
        """
        if hit_rays.size == 0:
            return None
        order = np.lexsort((hit_rays, owner))
        rays, owner = hit_rays[order], owner[order]
        objects, first, hits = np.unique(owner, return_index=True, return_counts=True)
        example = [primitives[int(index[rays[i]])] for i in first]      # a primitive of each object
        kinds = [p.kind for p in example]
        rcs = np.array([p.rcs_dbsm for p in example])
        distance = np.minimum.reduceat(np.sqrt((points[rays] ** 2).sum(axis=1)), first)
        visible = 1.0 - np.exp(-hits / np.array([VISIBLE_HITS[k] for k in kinds]))
        rate = np.array([RATE[k] for k in kinds]) * visible * detection_probability(rcs, distance)
        vehicle = np.array([k == VEHICLE for k in kinds])
        rate[vehicle] *= np.sqrt(np.maximum(rcs[vehicle], 0.0) / 10.0 + 0.5)
        count = np.minimum(rng.poisson(rate), hits)
        group = np.repeat(np.arange(objects.size), hits)
        power = np.array([SPECULAR[k] for k in kinds])[group]
        weight = np.clip(cosine[rays], 0.0, 1.0) ** power + 0.05
        key = np.log(rng.random(rays.size) + 1e-300) / weight          # larger is likelier
        ranked = np.lexsort((-key, group))
        position = np.arange(rays.size) - np.repeat(first, hits)
        chosen = ranked[position < count[group]]
        if chosen.size == 0:
            return None
        g = group[chosen]
        mean_weight = np.add.reduceat(weight, first) / hits
        relative = 10.0 * np.log10(weight[chosen] / mean_weight[g])
        returns_rcs = rcs[g] + 0.5 * np.clip(relative, -12.0, 6.0)
        velocity = np.array([p.velocity for p in example])[g]
        codes = np.array([KIND_CODE[k] for k in kinds], dtype=np.int8)[g]
        return self._returns(points[rays[chosen]], returns_rcs, velocity, R, v_radar_world, codes, objects[g])

    def _clutter(self, ground_rays, points, R, v_radar_world, rng):
        """Weak static returns from the road surface, and false alarms anywhere in the field of view."""
        parts = []
        count = min(int(rng.poisson(CLUTTER_RATE)), ground_rays.size)
        if count:
            rays = rng.choice(ground_rays, size=count, replace=False)
            rcs = rng.uniform(-20.0, -8.0, count)
            parts.append(self._returns(points[rays], rcs, np.zeros(3), R, v_radar_world, KIND_CODE['clutter'], -1))
        count = int(rng.poisson(NOISE_RATE))
        if count:
            rng_range = rng.uniform(2.0, self.config.radar_max_range, count)
            az = np.radians(rng.uniform(-0.5, 0.5, count) * self.config.radar_fov_deg)
            xyz = np.stack([rng_range * np.cos(az), rng_range * np.sin(az), np.zeros(count)], axis=1)
            scan = self._returns(xyz, rng.uniform(-25.0, -10.0, count), np.zeros(3), R, v_radar_world,
                                 KIND_CODE['noise'], -1)
            scan.v_radial = (scan.v_radial + rng.normal(0.0, 3.0, count)).astype(np.float32)
            parts.append(scan)
        return _concatenate(parts)

    def _returns(self, xyz, rcs, velocity_world, R, v_radar_world, kind, instance):
        """
        Build returns at radar-frame points ``xyz`` of objects moving with ``velocity_world``.

        ``velocity_world`` is (3,) or one per return (N, 3); ``kind`` and ``instance`` a value or one per return.
        """
        xyz = np.asarray(xyz, dtype=np.float64)
        n = xyz.shape[0]
        los = xyz / np.maximum(np.linalg.norm(xyz, axis=1, keepdims=True), 1e-6)
        velocity = np.broadcast_to(np.asarray(velocity_world, dtype=np.float64), (n, 3))
        v_radial = ((velocity - v_radar_world) @ R.T * los).sum(axis=1)
        compensated = (velocity @ R.T * los).sum(axis=1)
        horizontal = los[:, :2] / np.maximum(np.linalg.norm(los[:, :2], axis=1, keepdims=True), 1e-6)
        return RadarScan(xyz.astype(np.float32), np.asarray(rcs, dtype=np.float32).reshape(n),
                         v_radial.astype(np.float32), (compensated[:, None] * horizontal).astype(np.float32),
                         np.broadcast_to(np.asarray(kind, dtype=np.int8), (n,)).copy(),
                         np.broadcast_to(np.asarray(instance, dtype=np.int32), (n,)).copy())

    def _ghosts(self, drive, scan, T_world_from_radar, rng):
        """Multipath mirror images of vehicles behind the building line, and double-bounce returns."""
        vehicles = np.flatnonzero(scan.kind == KIND_CODE[VEHICLE])
        parts = []
        road = drive.road
        mirror = vehicles[rng.random(vehicles.size) < MIRROR_PROBABILITY]
        if mirror.size and (road.facade_left > 0 or road.facade_right > 0):
            world = scan.xyz[mirror].astype(np.float64) @ T_world_from_radar[:3, :3].T + T_world_from_radar[:3, 3]
            s = road.along(world[:, 0], world[:, 1])
            d = road.lateral(world[:, 0], world[:, 1])
            facade = np.where(d >= 0, road.facade_left, -road.facade_right)
            usable = facade != 0
            x, y, _ = road.pose(s, 2.0 * facade - d)
            ghost_world = np.stack([x, y, world[:, 2]], axis=1)[usable]
            T_radar_from_world = rigid_inverse(T_world_from_radar)
            xyz = ghost_world @ T_radar_from_world[:3, :3].T + T_radar_from_world[:3, 3]
            src = mirror[usable]
            parts.append(RadarScan(xyz.astype(np.float32), scan.rcs[src] - rng.uniform(6.0, 12.0, src.size),
                                   scan.v_radial[src], scan.vxy[src], np.full(src.size, KIND_CODE['ghost'], np.int8),
                                   scan.instance[src]))
        near = vehicles[np.linalg.norm(scan.xyz[vehicles], axis=1) < DOUBLE_BOUNCE_RANGE]
        double = near[rng.random(near.size) < DOUBLE_BOUNCE_PROBABILITY]
        if double.size:
            parts.append(RadarScan(2.0 * scan.xyz[double], scan.rcs[double] - 10.0, 2.0 * scan.v_radial[double],
                                   2.0 * scan.vxy[double], np.full(double.size, KIND_CODE['ghost'], np.int8),
                                   scan.instance[double]))
        kept = []
        for part in parts:
            distance = np.linalg.norm(part.xyz, axis=1)
            azimuth = np.degrees(np.abs(np.arctan2(part.xyz[:, 1], part.xyz[:, 0])))
            kept.append(_select(part, (distance <= self.config.radar_max_range)
                                & (azimuth <= self.config.radar_fov_deg / 2.0) & (part.xyz[:, 0] > 0)))
        return _concatenate(kept)

    def _noisy(self, scan, rng):
        """Apply range, azimuth, elevation, velocity and RCS measurement noise."""
        cfg = self.config
        n = len(scan)
        if n == 0:
            return scan
        xyz = scan.xyz.astype(np.float64)
        distance = np.linalg.norm(xyz, axis=1)
        azimuth = np.arctan2(xyz[:, 1], xyz[:, 0])
        elevation = np.arcsin(np.clip(xyz[:, 2] / np.maximum(distance, 1e-6), -1.0, 1.0))
        distance = np.maximum(distance + rng.normal(0.0, cfg.radar_range_noise_m, n), 0.3)
        azimuth = azimuth + np.radians(rng.normal(0.0, cfg.radar_azimuth_noise_deg, n))
        elevation = (1.0 - cfg.radar_elevation_flatten) * elevation \
            + np.radians(rng.normal(0.0, cfg.radar_elevation_noise_deg, n))
        ce = np.cos(elevation)
        noisy = np.stack([distance * ce * np.cos(azimuth), distance * ce * np.sin(azimuth),
                          distance * np.sin(elevation)], axis=1)
        return RadarScan(noisy.astype(np.float32),
                         (scan.rcs + rng.normal(0.0, cfg.radar_rcs_noise_db, n)).astype(np.float32),
                         (scan.v_radial + rng.normal(0.0, cfg.radar_velocity_noise, n)).astype(np.float32),
                         scan.vxy, scan.kind, scan.instance)


PER_RETURN = ('xyz', 'rcs', 'v_radial', 'vxy', 'kind', 'instance')


def _select(scan, mask):
    return RadarScan(*(getattr(scan, name)[mask] for name in PER_RETURN))


def _concatenate(parts):
    parts = [p for p in parts if p is not None and len(p)]
    if not parts:
        return RadarScan(np.zeros((0, 3), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32),
                         np.zeros((0, 2), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int32))
    return RadarScan(*(np.concatenate([getattr(p, name) for p in parts]) for name in PER_RETURN))
