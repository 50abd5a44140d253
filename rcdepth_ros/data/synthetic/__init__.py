"""
Synthetic driving scenes: procedural drives with a camera, exact dense depth, lidar and automotive radar.

The embedded default data for the demo and for tests without a data set::

    reader = SyntheticReader(SyntheticConfig(num_drives=2, frames_per_drive=50))   # or SyntheticReader({...})
    sample = reader.sample('drive0001/0012')        # rcdepth_ros.data.sample.Sample
    frame = reader.frame('drive0001/0012')          # the Sample plus ground truth (pixel owners, radar origins)

What a drive is: a road (one or two lanes each way, parking strips, kerbs, sidewalks, a grass verge) on a
constant-curvature arc, lined with buildings (facades with windows, shop fronts), street lights, signs, trees,
parked cars / SUVs / vans, moving traffic both ways and pedestrians. The ego vehicle follows a lane at a constant
speed with a slow lateral wander, body pitch and bounce; ``config.frames_per_drive`` frames at 10 Hz.

Conventions of the samples:

* camera: optical frame (x right, y down, z forward), K with fx = fy = ``focal_ratio * width`` and the principal
  point at the image centre, no distortion; RGB uint8;
* ``depth_gt_dense``: exact z of the first surface hit through every pixel centre (ray casting, no
  rasterisation approximations), float32 metres; 0 for sky and for surfaces beyond ``config.max_depth``;
* ``depth_gt``: the lidar points projected into the image (nearest wins), as for the real data sets;
* ``lidar_xyz`` / ``radar``: in the camera frame; ``extrinsics['radar' | 'lidar' | 'base']`` are the static
  ``T_camera_from_sensor``; ``ego_pose`` is ``T_world_from_camera`` and ``sensor_poses[role]`` the world pose
  of each sensor (world = the fixed ``frames['world']`` odometry frame, for /tf); all sensors are sampled at the
  camera stamp;
* frames: camera ``camera_optical``, radar ``radar``, lidar ``lidar``, ego ``base_link``, world ``odom``;
* stamps: 10 Hz from 2024-01-01T00:00:00Z, the drives one after the other with 1 s between them;
* radar: see ``radar.py`` (sparse, vehicles and metal strongest, Doppler, clutter, ghosts, flattened elevation);
  lidar: see ``lidar.py``; weather (fog, night) changes the image only, see ``weather.py``.

Everything is deterministic: a drive depends only on (seed, split, drive index), a frame only on its drive and
index, so ``sample(frame_id)`` gives identical bytes in any order. Modules: config, road, scene, layout,
raycast, materials, ground, textures, render, weather, lidar, radar, generator, reader, scenes (hand-made drives
for checks), memory (allocator tuning).
"""

from rcdepth_ros.data.synthetic.config import synthetic_config, SyntheticConfig
from rcdepth_ros.data.synthetic.reader import synthetic_frame_id, SyntheticReader

__all__ = ['SyntheticConfig', 'SyntheticReader', 'synthetic_config', 'synthetic_frame_id']
