"""``rcdepth make-bag``: the command on every source, its output, and its errors (exit status 2, a clear message)."""

import shutil

import numpy as np
import pytest

from rcdepth_ros.cli import main
from rcdepth_ros.core.bags import bag_frames, bag_info, read_bag_messages
from rcdepth_ros.data.registry import open_reader

SYNTHETIC = ['-o', 'config={num_drives: 1, frames_per_drive: 3, height: 64, width: 96, lidar_beams: 4}']


def make_bag(*args):
    return main(['make-bag', *args])


def test_synthetic_bag_from_the_command_line(tmp_path, capsys):
    out = tmp_path / 'drive'
    assert make_bag('--source', 'synthetic', *SYNTHETIC, '--dense-gt', str(out)) == 0
    printed = capsys.readouterr().out
    assert f'{out}: 3 frames' in printed and '(mcap, rosbag2 v9)' in printed and '/tf_static 1' in printed
    info = bag_info(out)
    assert info.frame_ids() == ['drive0000/0000', 'drive0000/0001', 'drive0000/0002']
    assert set(info.topics) == {'/camera/image', '/camera/camera_info', '/radar/points', '/lidar/points',
                                '/ground_truth/depth_dense', '/tf', '/tf_static'}
    samples = list(open_reader('synthetic', config={'num_drives': 1, 'frames_per_drive': 3, 'height': 64,
                                                    'width': 96, 'lidar_beams': 4}))
    for frame, sample in zip(bag_frames(out), samples):
        np.testing.assert_array_equal(frame.rgb(), sample.image)
        np.testing.assert_allclose(frame.radar_points().xyz, sample.radar.xyz, atol=1e-4)


def test_synthetic_default_is_one_short_drive_with_contiguous_stamps_and_its_size_said(tmp_path, capsys):
    out = tmp_path / 'drive'
    config = 'config={num_drives: 3, frames_per_drive: 4, height: 64, width: 96, lidar_beams: 4}'
    assert make_bag('--source', 'synthetic', '-o', config, str(out)) == 0
    captured = capsys.readouterr()
    assert 'writing 4 frames (0.3 s of bag time) of the first synthetic drive' in captured.err
    assert 'MB for 4 frames (from the first frame)' in captured.err
    info = bag_info(out)
    assert info.frame_ids() == [f'drive0000/{i:04d}' for i in range(4)]
    assert info.duration_s == pytest.approx(0.3) and f'{out}: 4 frames' in captured.out
    # every drive when asked: they follow one another, 1 s apart, not an hour
    assert make_bag('--source', 'synthetic', '-o', config, '--frames', '0-11', str(tmp_path / 'all')) == 0
    assert bag_info(tmp_path / 'all').duration_s == pytest.approx(3 * 0.3 + 2 * 1.1)


def test_existing_output_needs_force(tmp_path, capsys):
    out = tmp_path / 'drive'
    assert make_bag('--source', 'synthetic', *SYNTHETIC, '--frames', '0', str(out)) == 0
    assert make_bag('--source', 'synthetic', *SYNTHETIC, '--frames', '0-1', str(out)) == 2
    assert 'exists already; pass --force' in capsys.readouterr().err
    assert bag_info(out).topics['/camera/image'].count == 1
    assert make_bag('--source', 'synthetic', *SYNTHETIC, '--frames', '0-1', '--force', str(out)) == 0
    assert bag_info(out).topics['/camera/image'].count == 2


@pytest.mark.parametrize('args, message', [
    (['--frames', '2-1'], "range '2-1' ends before it starts"),
    (['--frames', 'a-b'], 'is not a number or a range'),
    (['--frames', '7'], 'frame number 7 is out of range'),
    (['-o', 'radius'], "reader option 'radius': expected KEY=VALUE"),
    (['-o', 'radius=3'], "unknown option(s) ['radius']"),
    (['--root', '/data'], 'is generated and reads no files'),
    (['--jpeg-quality', '0'], 'jpeg_quality must be an integer in 1-100'),
])
def test_bad_input_exits_2_with_a_clear_message(tmp_path, capsys, args, message):
    assert make_bag('--source', 'synthetic', *SYNTHETIC, *args, str(tmp_path / 'bag')) == 2
    err = capsys.readouterr().err
    assert err.startswith('rcdepth make-bag: error:') and message in err
    assert not (tmp_path / 'bag').exists() and not (tmp_path / 'bag.partial').exists()


def test_unknown_source_and_unwritable_path(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        make_bag('--source', 'kitti', str(tmp_path / 'bag'))
    assert exc.value.code == 2 and "invalid choice: 'kitti'" in capsys.readouterr().err
    (tmp_path / 'file').write_text('x')
    assert make_bag('--source', 'synthetic', *SYNTHETIC, str(tmp_path / 'file' / 'bag')) == 2
    assert 'cannot create the bag' in capsys.readouterr().err


def test_astyx_compressed_keeps_the_jpeg_bytes(astyx_root, tmp_path):
    out = tmp_path / 'astyx'
    assert make_bag('--source', 'astyx', '--root', str(astyx_root), '--frames', '3', '--compressed', str(out)) == 0
    images = [m for m in read_bag_messages(out) if m.topic == '/camera/image/compressed']
    assert len(images) == 1 and images[0].msg.format == 'rgb8; jpeg compressed bgr8'
    assert bytes(images[0].msg.data) == (astyx_root / 'camera_front' / '000003.jpg').read_bytes()


def test_nuscenes_bag_carries_the_raw_18_field_radar(nuscenes_fixture, tmp_path):
    pytest.importorskip('nuscenes')
    root, _ = nuscenes_fixture
    out = tmp_path / 'nuscenes'
    assert make_bag('--source', 'nuscenes', '--root', str(root), '--split', 'val', '--frames', '0-1',
                    '-o', 'radars=[RADAR_FRONT, RADAR_FRONT_LEFT]', str(out)) == 0
    clouds = [m for m in read_bag_messages(out) if m.msgtype == 'sensor_msgs/msg/PointCloud2']
    radar = [m for m in clouds if m.topic.startswith('/radar/')]
    assert {m.topic for m in radar} == {'/radar/points', '/radar/radar_front_left/points'} and len(radar) == 4
    assert all(len(m.msg.fields) == 18 and m.msg.point_step == 43 for m in radar)
    assert {m.msg.header.frame_id for m in radar} == {'radar_front', 'radar_front_left'}


def test_zju_frames_sorted_by_time_and_bad_frames_skipped(zju_fixture, tmp_path, capsys):
    root, _ = zju_fixture
    copy = tmp_path / 'zju'
    shutil.copytree(root, copy)
    (copy / 'image' / '000002.png').write_bytes(b'not a png')
    out = tmp_path / 'bag'
    assert make_bag('--source', 'zju', '--root', str(copy), '--frames', '3,1,2', str(out)) == 2
    assert '000002' in capsys.readouterr().err and not out.exists()
    assert make_bag('--source', 'zju', '--root', str(copy), '--frames', '3,1,2', '--on-error', 'skip',
                    str(out)) == 0
    err = capsys.readouterr().err
    assert 'skipped frame 000002' in err and '1 frame(s) skipped' in err
    info = bag_info(out)
    assert info.frame_ids() == ['000001', '000003'], 'written in time order, the bad frame left out'
    assert set(info.topics) == {'/camera/image', '/camera/camera_info', '/radar/points', '/ground_truth/depth'}
