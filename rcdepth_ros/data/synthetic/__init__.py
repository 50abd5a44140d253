"""
Synthetic driving scenes: procedural drives with a camera, exact dense depth, lidar and automotive radar.

The embedded default data for the demo and for tests without a data set::

    reader = SyntheticReader(SyntheticConfig(num_drives=2, frames_per_drive=50))
    sample = reader.sample('drive0001/0012')

Modules: config (SyntheticConfig), road and scene (geometry, things, ego motion), layout (procedural drives),
raycast (the ray caster), render / materials / ground / textures / weather (the camera), lidar, radar,
generator (one frame -> Sample), reader (SyntheticReader).
"""

from rcdepth_ros.data.synthetic.config import synthetic_config, SyntheticConfig
from rcdepth_ros.data.synthetic.reader import synthetic_frame_id, SyntheticReader

__all__ = ['SyntheticConfig', 'SyntheticReader', 'synthetic_config', 'synthetic_frame_id']
