"""Synthetic scene content: a plausible road scene, no collisions, and cues that make radar worth fusing."""

import numpy as np

from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.data.synthetic.layout import FRAME_RATE, generate_drive
from rcdepth_ros.data.synthetic.raycast import GROUND, NO_HIT
from rcdepth_ros.data.synthetic.scene import VEHICLE

CONFIG = SyntheticConfig(height=120, width=200, num_drives=6, frames_per_drive=60)


def test_image_reads_as_a_road_scene():
    reader = SyntheticReader(SyntheticConfig(height=120, width=200, num_drives=4, frames_per_drive=60,
                                             fog_probability=0.0, night_probability=0.0))
    for frame_id in ('drive0000/0000', 'drive0003/0040'):
        frame = reader.frame(frame_id)
        image, index, depth = frame.sample.image.astype(float), frame.camera.index, frame.camera.depth
        sky = index == NO_HIT
        # Sky at the top and bluish; road surface at the bottom, grey, farther up the image.
        assert sky[:10].mean() > 0.2 and not sky[-10:].any()
        assert image[sky][:, 2].mean() > image[sky][:, 0].mean() + 10
        bottom = image[-15:, 80:120]
        assert (index[-15:, 80:120] == GROUND).all()
        assert np.abs(bottom[..., 0] - bottom[..., 2]).mean() < 15
        column = depth[:, 100]
        ground_rows = np.flatnonzero(index[:, 100] == GROUND)
        assert np.all(np.diff(column[ground_rows[-20:]]) < 0)


def test_ego_never_runs_into_traffic():
    for drive_index in range(CONFIG.num_drives):
        drive = generate_drive(CONFIG, drive_index)
        ego = drive.ego
        for frame in range(0, CONFIG.frames_per_drive, 5):
            t = frame / FRAME_RATE
            s_ego, d_ego = ego.road_position(t)
            for thing in drive.things:
                if thing.kind != VEHICLE or abs(thing.d - d_ego) > 1.5:
                    continue
                gap = thing.position_s(t) - s_ego
                assert not -6.0 < gap < thing.size[0] / 2 + 4.5, (drive_index, frame, thing.label, gap)


def test_apparent_size_does_not_give_distance_away():
    """Vehicle heights vary (cars to lorries), so distance guessed from apparent height is often badly off."""
    reader = SyntheticReader(CONFIG)
    errors = []
    for drive in range(CONFIG.num_drives):
        sample = reader.sample(f'drive{drive:04d}/0030')
        fy = sample.intrinsics.K[1, 1]
        for box in sample.boxes:
            if box.attributes['kind'] != 'vehicle' or not 5.0 < box.center[2] < 60.0:
                continue
            pixels = fy * box.size[2] / box.center[2]
            guess = fy * 1.5 / pixels               # a typical car is 1.5 m tall
            errors.append(abs(guess - box.center[2]) / box.center[2])
    errors = np.array(errors)
    assert errors.size > 20
    # A radar return's range is good to decimetres; the size-based guess is typically off by metres.
    assert np.mean(errors) > 0.1 and np.mean(errors > 0.2) > 0.1


def test_camera_mounting_varies_between_drives():
    reader = SyntheticReader(CONFIG)
    heights, pitches = [], []
    for drive in range(CONFIG.num_drives):
        pose = reader.sample(f'drive{drive:04d}/0000').sensor_poses['camera']
        heights.append(pose[2, 3])
        pitches.append(np.degrees(np.arcsin(-pose[2, 2])))    # optical z axis pointing down = positive pitch
    assert np.ptp(heights) > 0.2 and np.ptp(pitches) > 1.0
