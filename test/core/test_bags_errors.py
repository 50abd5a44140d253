"""Writing and reading bags on bad input: clear BagErrors, nothing half-written left behind, an old bag kept."""

import dataclasses

import numpy as np
import pytest

from rcdepth_ros.core.bags import bag_frames, BagWriteOptions, read_bag, read_bag_messages, write_bag
from rcdepth_ros.core.sensor_types import CameraIntrinsics, RadarPoints
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import BagError, DatasetError

EPOCH = 1_700_000_000_000_000_000


def tiny_sample(index, stamp=None, radar_offset=(0.5, 0.0, 0.2), radars=('radar',)):
    """Return a 12x8 frame with three returns per radar, each radar mounted at ``radar_offset`` in the camera."""
    stamp = EPOCH + index * 100_000_000 if stamp is None else stamp
    image = np.full((8, 12, 3), index * 10, np.uint8)
    K = np.array([[10.0, 0.0, 6.0], [0.0, 10.0, 4.0], [0.0, 0.0, 1.0]])
    xyz = np.array([[0.0, 0.0, 5.0], [1.0, 0.5, 10.0], [-2.0, 0.0, 20.0]], np.float32)
    radar = RadarPoints(np.concatenate([xyz] * len(radars)), np.arange(3.0 * len(radars)),
                        np.ones(3 * len(radars)), frame_id='cam', stamp_ns=stamp)
    T = np.eye(4)
    T[:3, 3] = radar_offset
    return Sample(source='test', frame_id=f'{index:03d}', stamp_ns=stamp, image=image,
                  intrinsics=CameraIntrinsics(K, 12, 8, frame_id='cam'), radar=radar, lidar_xyz=None,
                  depth_gt=np.zeros((8, 12), np.float32), extrinsics={role: T for role in radars},
                  frames={'camera': 'cam', **{role: role for role in radars}},
                  stamps_ns={'camera': stamp, **{role: stamp for role in radars}})


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_existing_output_needs_force_and_force_replaces_a_bag(tmp_path):
    out = tmp_path / 'bag'
    write_bag([tiny_sample(0)], out)
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(BagError, match=r'exists already; pass --force'):
        write_bag([tiny_sample(1)], out)
    assert sorted(p.name for p in out.iterdir()) == before
    assert len(list(read_bag(out, topics=['/camera/image']))) == 1
    summary = write_bag([tiny_sample(1), tiny_sample(2)], out, force=True)
    assert summary.frames == 2 and len(list(read_bag(out, topics=['/camera/image']))) == 2
    assert leftovers(tmp_path) == ['bag'], 'no staging or replaced directory left'


def test_force_replaces_a_file_but_never_a_directory_that_is_not_a_bag(tmp_path):
    a_file = tmp_path / 'out'
    a_file.write_text('old')
    write_bag([tiny_sample(0)], a_file, force=True)
    assert (a_file / 'metadata.yaml').is_file()
    precious = tmp_path / 'home'
    precious.mkdir()
    (precious / 'notes.txt').write_text('keep me')
    with pytest.raises(BagError, match='not a rosbag2 bag.*refusing to replace it even with --force'):
        write_bag([tiny_sample(0)], precious, force=True)
    assert (precious / 'notes.txt').read_text() == 'keep me'


def test_unwritable_or_meaningless_paths(tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    with pytest.raises(BagError, match=r'a_file/bag: cannot create the bag'):
        write_bag([tiny_sample(0)], blocker / 'bag')
    with pytest.raises(BagError, match='does not name a bag directory'):
        write_bag([tiny_sample(0)], tmp_path / '..')
    assert leftovers(tmp_path) == ['a_file']


def test_stale_partial_directory_needs_force(tmp_path):
    (tmp_path / 'bag.partial').mkdir()
    with pytest.raises(BagError, match='bag.partial exists'):
        write_bag([tiny_sample(0)], tmp_path / 'bag')
    write_bag([tiny_sample(0)], tmp_path / 'bag', force=True)
    assert leftovers(tmp_path) == ['bag']


def test_a_bad_frame_midway_leaves_nothing_and_keeps_the_old_bag(tmp_path):
    out = tmp_path / 'bag'
    write_bag([tiny_sample(0)], out)

    def frames():
        yield tiny_sample(1)
        raise DatasetError('test frame 002: camera_front/000002.jpg: truncated JPEG')

    with pytest.raises(DatasetError, match='truncated JPEG'):
        write_bag(frames(), out, force=True)
    assert leftovers(tmp_path) == ['bag']
    assert [t for _, _, t, _ in read_bag(out, topics=['/camera/image'])] == [tiny_sample(0).stamp_ns]
    with pytest.raises(DatasetError):
        write_bag(frames(), tmp_path / 'new')
    assert leftovers(tmp_path) == ['bag']


def test_frames_out_of_time_order_and_empty_input(tmp_path):
    with pytest.raises(BagError, match=r'test frame 000: its messages start at .* before messages already written'):
        write_bag([tiny_sample(1), tiny_sample(2), tiny_sample(0)], tmp_path / 'bag')
    with pytest.raises(BagError, match='no frames to write'):
        write_bag([], tmp_path / 'bag')
    assert leftovers(tmp_path) == []


def test_frames_may_interleave_as_long_as_nothing_written_is_preceded(tmp_path):
    # The radar of frame 1 fired 30 ms before the image of frame 0's successor; its messages sort in between.
    first = tiny_sample(0)
    second = tiny_sample(1)
    second.stamps_ns['radar'] = second.stamp_ns - 30_000_000
    write_bag([first, second], tmp_path / 'bag')
    times = [t for _, _, t, _ in read_bag(tmp_path / 'bag')]
    assert times == sorted(times) and second.stamps_ns['radar'] in times


def test_changed_extrinsics_republish_the_full_static_set(tmp_path):
    a, b = tiny_sample(0, radars=('radar', 'radar_rear')), tiny_sample(1, radars=('radar', 'radar_rear'))
    b.extrinsics = dict(b.extrinsics)
    b.extrinsics['radar_rear'] = b.extrinsics['radar_rear'].copy()
    b.extrinsics['radar_rear'][0, 3] = -4.0

    def records(sample, role):
        part = sample.radar.select(slice(0, 3) if role == 'radar' else slice(3, 6))
        xyz = part.xyz - sample.extrinsics[role][:3, 3].astype(np.float32)
        return np.rec.fromarrays([xyz[:, 0], xyz[:, 1], xyz[:, 2]], names='x,y,z')

    write_bag([a, b], tmp_path / 'bag', radar_records=records)
    statics = [m for m in read_bag_messages(tmp_path / 'bag') if m.topic == '/tf_static']
    assert [m.log_time_ns for m in statics] == [a.stamp_ns, b.stamp_ns]
    assert [len(m.msg.transforms) for m in statics] == [2, 2], 'each /tf_static message holds every transform'
    rear = [tr for tr in statics[1].msg.transforms if tr.child_frame_id == 'radar_rear'][0]
    assert rear.transform.translation.x == -4.0
    frames = list(bag_frames(tmp_path / 'bag'))
    np.testing.assert_allclose(frames[1].radar_points().xyz, b.radar.xyz, atol=1e-6)
    assert [m.topic for m in frames[1].radar] == ['/radar/points', '/radar/radar_rear/points']


def test_several_radars_need_raw_records(tmp_path):
    with pytest.raises(BagError, match=r"2 radars \(\['radar', 'radar_rear'\]\) merged in one sample"):
        write_bag([tiny_sample(0, radars=('radar', 'radar_rear'))], tmp_path / 'bag')

    def too_few(sample, role):
        return np.rec.fromarrays([np.zeros(1, np.float32)] * 3, names='x,y,z')

    with pytest.raises(BagError, match='raw radar records hold 2 returns, the sample 6'):
        write_bag([tiny_sample(0, radars=('radar', 'radar_rear'))], tmp_path / 'bag', radar_records=too_few)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize('bad, match', [
    ({'compressed_format': 'gif'}, 'compressed_format'), ({'jpeg_quality': 0}, 'jpeg_quality'),
    ({'storage': 'rosbag1'}, 'storage'), ({'version': 5}, 'version'),
])
def test_bad_options(bad, match):
    with pytest.raises(BagError, match=match):
        BagWriteOptions(**bad)


def test_inconsistent_samples_are_refused(tmp_path):
    sample = tiny_sample(0)
    sample.frames['radar'] = 'cam'
    with pytest.raises(BagError, match="radar is in the 'cam' frame but its transform to it is not the identity"):
        write_bag([sample], tmp_path / 'bag')
    missing = dataclasses.replace(tiny_sample(0), image_path=str(tmp_path / 'gone.jpg'))
    with pytest.raises(BagError, match='cannot read the original image .*gone.jpg'):
        write_bag([missing], tmp_path / 'bag', BagWriteOptions(compressed=True))
    assert leftovers(tmp_path) == []


def test_reading_bad_bags(tmp_path):
    with pytest.raises(BagError, match='not found'):
        list(read_bag(tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    with pytest.raises(BagError, match='without metadata.yaml is not a rosbag2 bag'):
        list(read_bag(tmp_path / 'empty'))
    write_bag([tiny_sample(0)], tmp_path / 'bag')
    with pytest.raises(BagError, match=r'no topic /lidar/points; topics: /camera/camera_info, /camera/image'):
        list(read_bag(tmp_path / 'bag', topics=['/lidar/points']))
    mcap = next((tmp_path / 'bag').glob('*.mcap'))
    mcap.write_bytes(mcap.read_bytes()[:200])
    with pytest.raises(BagError, match='bag .*bag: cannot'):
        list(read_bag_messages(tmp_path / 'bag'))
    with pytest.raises(BagError, match='radar_select must be one of'):
        list(bag_frames(tmp_path / 'bag', radar_select='latest'))


def test_empty_radar_and_lidar_clouds_round_trip(tmp_path):
    sample = tiny_sample(0)
    sample.radar = sample.radar.select(np.zeros(0, dtype=int))
    sample.lidar_xyz = np.zeros((0, 3), np.float32)
    sample.extrinsics['lidar'] = np.eye(4)
    sample.frames['lidar'] = 'lidar'
    write_bag([sample], tmp_path / 'bag')
    frame = next(bag_frames(tmp_path / 'bag'))
    assert len(frame.radar_points()) == 0 and frame.lidar_points().shape == (0, 3)
    assert not frame.ground_truth().any()
