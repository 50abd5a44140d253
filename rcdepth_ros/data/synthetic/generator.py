"""
One frame of a synthetic drive: render the camera, scan the lidar, measure the radar, and assemble the Sample.

Every frame draws from its own random streams, seeded by (seed, split, drive, frame, sensor), so a frame is the
same whatever was generated before it, and the camera's noise never shifts the radar's draws (fog and night
change the image only).
"""

import collections
from concurrent.futures import ThreadPoolExecutor
import dataclasses
import os
import weakref

import numpy as np

from rcdepth_ros.core.geometry.transforms import invert_transform, transform_points
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.boxes import Box3D
from rcdepth_ros.data.readers import lidar_depth_image, rasterise_radar
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.data.synthetic.layout import FRAME_RATE, generate_drive
from rcdepth_ros.data.synthetic.lidar import LidarModel
from rcdepth_ros.data.synthetic.memory import keep_temporaries_in_heap
from rcdepth_ros.data.synthetic.radar import RadarModel
from rcdepth_ros.data.synthetic.render import CameraRenderer, MATERIAL_ID
from rcdepth_ros.data.synthetic.scene import PEDESTRIAN, VEHICLE
from rcdepth_ros.data.synthetic.textures import TextureBank

SOURCE = 'synthetic'
EPOCH_NS = 1_704_067_200 * 1_000_000_000            # 2024-01-01T00:00:00Z
DRIVE_GAP_NS = 1_000_000_000                         # one second between a drive's last frame and the next's first
FRAME_PERIOD_NS = int(1e9 / FRAME_RATE)
# TF frame of each role; 'base' is the ego vehicle (base_link on the ground under the rear axle), 'world' the
# fixed odometry frame the ego pose is given in.
FRAMES = {'camera': 'camera_optical', 'radar': 'radar', 'lidar': 'lidar', 'base': 'base_link', 'world': 'odom'}
CAMERA, LIDAR, RADAR = 1, 2, 3
DRIVE_CACHE = 8
LOOK_BEHIND = 30.0
LOOK_AHEAD_MARGIN = 60.0


def frame_stamp_ns(drive_index, frame_index, frames_per_drive):
    """
    Return the timestamp of a frame: frames at 10 Hz from a fixed epoch, each drive one second after the last.

    The drives follow one another (a bag of several drives spans their frames, not hours of nothing a player
    would wait through); the one-second gap keeps a drive's sweeps out of the next drive's radar window.
    """
    drive_span_ns = int(frames_per_drive) * FRAME_PERIOD_NS + DRIVE_GAP_NS
    return EPOCH_NS + int(drive_index) * drive_span_ns + int(frame_index) * FRAME_PERIOD_NS


@dataclasses.dataclass
class SyntheticFrame:
    """A frame's Sample plus the ground truth behind it (what each pixel and each radar return came from)."""

    sample: Sample
    drive: object
    time: float
    primitives: list
    camera: object          # render.CameraFrame
    radar: object           # radar.RadarScan in the radar frame


class SceneGenerator:
    """Generates frames of one configuration and split; keeps the textures, sensor models and recent drives."""

    def __init__(self, config, split_key=0, threads=False):
        """
        Build the textures and the sensor models (once per configuration).

        ``threads``: shade the ground and sky, then simulate lidar and radar, in a second thread while the camera
        shades the objects. numpy releases the GIL only inside its array loops, so the gain is small with a free
        second core (benchmarks/bench_synthetic.py) and turns into a loss when the other core is busy; off by default.
        """
        keep_temporaries_in_heap()
        self.config = config
        self.split_key = int(split_key)
        self.threads = bool(threads)
        self._pool = None
        self._pool_pid = None
        self.textures = TextureBank(config.seed)
        self.camera = CameraRenderer(config, self.textures)
        self.lidar = LidarModel(config)
        self.radar = RadarModel(config)
        self._drives = collections.OrderedDict()

    def drive(self, drive_index):
        """Return the Drive ``drive_index`` (cached: a few recent drives)."""
        drive = self._drives.get(drive_index)
        if drive is None:
            drive = generate_drive(self.config, drive_index, self.split_key)
            self._drives[drive_index] = drive
            while len(self._drives) > DRIVE_CACHE:
                self._drives.popitem(last=False)
        else:
            self._drives.move_to_end(drive_index)
        return drive

    def __getstate__(self):
        """Pickle without the thread pool (rebuilt on first use)."""
        state = dict(self.__dict__)
        state['_pool'] = state['_pool_pid'] = None
        return state

    def _executor(self):
        # A pool inherited through fork (a DataLoader worker) has no threads behind it: make a new one.
        if self._pool is None or self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix='synthetic-sensors')
            self._pool_pid = os.getpid()
            # The idle worker thread ends with the generator, not only at interpreter exit.
            weakref.finalize(self, self._pool.shutdown, wait=False)
        return self._pool

    def _rng(self, drive_index, frame_index, sensor):
        return np.random.default_rng([int(self.config.seed), self.split_key, int(drive_index), int(frame_index),
                                      sensor])

    def frame(self, drive_index, frame_index, frame_id='', radar_image=True, boxes=True):
        """Return the SyntheticFrame ``frame_index`` of drive ``drive_index``."""
        return self.render(self.drive(drive_index), frame_index, frame_id, radar_image, boxes)

    def render(self, drive, frame_index, frame_id='', radar_image=True, boxes=True):
        """Return the SyntheticFrame ``frame_index`` of a Drive (generated, or built by hand in a test)."""
        cfg = self.config
        drive_index = drive.index
        rig = drive.rig
        t = frame_index / FRAME_RATE
        stamp = frame_stamp_ns(drive_index, frame_index, cfg.frames_per_drive)
        T_world_from_base = drive.ego_pose(t)
        poses = {'base': T_world_from_base, 'camera': T_world_from_base @ rig.T_base_from_camera,
                 'lidar': T_world_from_base @ rig.T_base_from_lidar,
                 'radar': T_world_from_base @ rig.T_base_from_radar}
        s_ego = drive.ego.road_position(t)[0]
        reach = max(cfg.max_depth, cfg.radar_max_range, cfg.lidar_max_range) + LOOK_AHEAD_MARGIN
        primitives = drive.primitives(t, (s_ego - LOOK_BEHIND, s_ego + reach))
        # Numbered by material, so that the camera's shading needs no renumbering (see render._shade_objects).
        primitives.sort(key=lambda p: MATERIAL_ID[p.material])
        v_radar = drive.ego_velocity(t, rig.T_base_from_radar[:3, 3])

        def range_sensors():
            lidar = self.lidar.scan(drive.road, primitives, poses['lidar'], self._rng(drive_index, frame_index, LIDAR))
            scan = self.radar.measure(drive, primitives, poses['radar'], v_radar,
                                      self._rng(drive_index, frame_index, RADAR))
            return lidar, scan

        pool = self._executor() if self.threads else None
        camera = self.camera.render(drive, t, primitives, poses['camera'],
                                    self._rng(drive_index, frame_index, CAMERA), pool, range_sensors)
        lidar, scan = camera.then.result() if camera.then is not None else range_sensors()
        extrinsics = {role: rig.T_camera_from(name) for role, name in
                      (('radar', 'radar'), ('lidar', 'lidar'), ('base', 'base_link'))}
        intrinsics = CameraIntrinsics(rig.K, cfg.width, cfg.height, frame_id=FRAMES['camera'])
        radar_cam = RadarPoints(scan.xyz, scan.rcs, scan.v_radial, scan.vxy, FRAMES['radar'],
                                stamp).transformed(extrinsics['radar'], FRAMES['camera'])
        lidar, rings = lidar
        lidar_cam = transform_points(lidar, extrinsics['lidar']).astype(np.float32)
        sample = Sample(
            source=SOURCE, frame_id=frame_id, stamp_ns=stamp, image=camera.image, intrinsics=intrinsics,
            radar=radar_cam, lidar_xyz=lidar_cam, depth_gt=lidar_depth_image(lidar_cam, intrinsics),
            depth_gt_dense=camera.depth, extrinsics=extrinsics, frames=dict(FRAMES),
            stamps_ns={role: stamp for role in ('camera', 'radar', 'lidar')},
            ego_pose=poses['camera'], sensor_poses=poses, lidar_ring=rings)
        if radar_image:
            sample.radar_image = rasterise_radar(radar_cam, intrinsics, cfg.radar_channels)
            sample.radar_channels = tuple(cfg.radar_channels)
        if boxes:
            sample.boxes = _boxes(drive, t, invert_transform(poses['camera']), rig.K, cfg.width, cfg.height,
                                  cfg.max_depth)
        return SyntheticFrame(sample, drive, t, primitives, camera, scan)


def _boxes(drive, t, T_cam_from_world, K, width, height, max_depth):
    """Return the vehicles and pedestrians in the camera's view (up to ``max_depth``) as Box3D, camera frame."""
    annotated = [i for i, th in enumerate(drive.things) if th.kind in (VEHICLE, PEDESTRIAN) and th.size is not None]
    if not annotated:
        return []
    T_world, _ = drive.thing_poses(t, annotated)
    T = np.matmul(T_cam_from_world, T_world)
    sizes = np.array([drive.things[i].size for i in annotated])
    centre = T[:, :3, 2] * (sizes[:, 2:3] / 2.0) + T[:, :3, 3]
    reach = 0.5 * np.linalg.norm(sizes, axis=1)
    z = centre[:, 2]
    # In front, not beyond max_depth, and within the image's horizontal and vertical field of view.
    ahead = (z + reach > 0.5) & (z - reach < max_depth)
    margin = reach / np.maximum(z, 0.5)
    ahead &= np.abs(centre[:, 0] / np.maximum(z, 0.5)) < 0.5 * width / K[0, 0] + margin
    ahead &= np.abs(centre[:, 1] / np.maximum(z, 0.5)) < 0.5 * height / K[1, 1] + margin
    boxes = []
    for k in np.flatnonzero(ahead):
        thing = drive.things[annotated[k]]
        boxes.append(Box3D(centre[k], thing.size, T[k, :3, :3], thing.label, FRAMES['camera'],
                           {'instance': annotated[k], 'kind': thing.kind, 'moving': bool(thing.speed),
                            'speed': float(thing.speed)}))
    return boxes
