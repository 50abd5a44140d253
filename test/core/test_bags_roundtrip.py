"""
Bags of every source read back with rosbags and compared, message by message, with the samples they came from.

The checks do not use the package's bag reader or TF buffer: every message is deserialised with rosbags, the
transforms are chained here by hand, and the points are moved with the transform the reader applied (computed from
the sample), so a mistake in the writer cannot be hidden by the same mistake in the reader. ``bag_frames`` is then
checked against the samples on the same bags.
"""

from pathlib import Path

import cv2
import numpy as np
import pytest

from rcdepth_ros.commands.make_bag import nuscenes_radar_records
from rcdepth_ros.core.bags import bag_frames, BagLayout, BagWriteOptions, write_bag
from rcdepth_ros.core.geometry.transforms import transform_from_translation_quaternion, transform_points
from rcdepth_ros.data.radar_files import read_nuscenes_pcd
from rcdepth_ros.data.registry import open_reader
from rosbags.highlevel import AnyReader
from rosbags.typesys import get_typestore, Stores

SYNTHETIC_CONFIG = {'num_drives': 1, 'frames_per_drive': 4, 'height': 96, 'width': 160, 'lidar_beams': 8,
                    'lidar_azimuth_step_deg': 1.0, 'seed': 3}
NUSCENES_PCD_FIELDS = ['x', 'y', 'z', 'dyn_prop', 'id', 'rcs', 'vx', 'vy', 'vx_comp', 'vy_comp', 'is_quality_valid',
                       'ambig_state', 'x_rms', 'y_rms', 'invalid_state', 'pdh0', 'vx_rms', 'vy_rms']
RADAR_FIELD_NAMES = {'astyx': ['x', 'y', 'z', 'mag', 'v_r'], 'nuscenes': ['x', 'y', 'z', 'rcs', 'vx_comp', 'vy_comp'],
                     'synthetic': ['x', 'y', 'z', 'rcs', 'v_r'], 'zju': ['x', 'y', 'z']}
# float32 points moved to a sensor frame and back (and rotations orthonormal to 1e-7 only, Astyx): metres.
POINT_TOLERANCE = 2e-4


# ------------------------------------------------------------------------------------------------ reading by hand
def read_everything(path):
    """Return [(topic, msgtype, log_time, msg)] of every message, deserialised with rosbags' AnyReader."""
    with AnyReader([Path(path)], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        return [(c.topic, c.msgtype, t, reader.deserialize(raw, c.msgtype)) for c, t, raw in reader.messages()]


def stamp_ns(header):
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


def matrix(transform):
    t, q = transform.transform.translation, transform.transform.rotation
    return transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))


def cloud_array(msg):
    """Decode a PointCloud2 by hand from its fields (offsets, datatypes) into {name: column}."""
    kinds = {1: 'i1', 2: 'u1', 3: '<i2', 4: '<u2', 5: '<i4', 6: '<u4', 7: '<f4', 8: '<f8'}
    dtype = np.dtype({'names': [f.name for f in msg.fields], 'formats': [kinds[f.datatype] for f in msg.fields],
                      'offsets': [f.offset for f in msg.fields], 'itemsize': msg.point_step})
    assert msg.row_step == msg.point_step * msg.width and len(msg.data) == msg.row_step * msg.height
    return np.frombuffer(np.asarray(msg.data).tobytes(), dtype=dtype)


def applied(sample, role):
    """Return the transform the reader applied to a role's points (camera at image time <- sensor at its stamp)."""
    if sample.ego_pose is not None and role in sample.sensor_poses:
        return np.linalg.inv(sample.ego_pose) @ sample.sensor_poses[role]
    return sample.extrinsics[role]


def roles_of(sample):
    return [r for r in sample.extrinsics if r == 'radar' or r.startswith('radar_')]


class TreeByHand:
    """The static tree and the dynamic world -> body poses of a bag, chained without the package's buffer."""

    def __init__(self, messages, layout):
        statics = [m for t, _, _, m in messages if t == layout.tf_static_topic]
        assert len(statics) <= 1, 'constant extrinsics are written once on /tf_static'
        self.static = {tr.child_frame_id: (tr.header.frame_id, matrix(tr)) for tr in statics[0].transforms} \
            if statics else {}
        self.dynamic = {}
        for topic, _, log_time, msg in messages:
            if topic == layout.tf_topic:
                for tr in msg.transforms:
                    assert stamp_ns(tr.header) == log_time
                    self.dynamic[(tr.child_frame_id, log_time)] = (tr.header.frame_id, matrix(tr))

    def to_root(self, frame, stamp=None):
        T = np.eye(4)
        while frame in self.static or (frame, stamp) in self.dynamic:
            parent, T_parent = self.static[frame] if frame in self.static else self.dynamic[(frame, stamp)]
            T, frame = T_parent @ T, parent
        return frame, T

    def camera_from(self, camera, image_stamp, sensor, sensor_stamp):
        root_c, T_root_c = self.to_root(camera, image_stamp)
        root_s, T_root_s = self.to_root(sensor, sensor_stamp)
        assert root_c == root_s, f'{sensor} and {camera} are not in one tree'
        return np.linalg.inv(T_root_c) @ T_root_s


# ------------------------------------------------------------------------------------------------ the comparison
def check_bag(path, samples, options=None, layout=None, raw_radar=None):
    """Compare every message of the bag at ``path`` with ``samples``; return the messages."""
    options = options or BagWriteOptions()
    layout = layout or BagLayout()
    messages = read_everything(path)
    times = [t for _, _, t, _ in messages]
    assert times == sorted(times), 'messages are in log-time order'
    for topic, _, log_time, msg in messages:
        if hasattr(msg, 'header'):
            assert stamp_ns(msg.header) == log_time, f'{topic}: log time = header stamp'
        else:
            assert all(stamp_ns(tr.header) == log_time for tr in msg.transforms), f'{topic}: log time = stamp'
    by_topic = {}
    for topic, msgtype, _, msg in messages:
        by_topic.setdefault(topic, []).append((msgtype, msg))
    tree = TreeByHand(messages, layout)
    used = set()

    def per_frame(topic, msgtype):
        entries = by_topic.get(topic, [])
        assert len(entries) == len(samples), f'{topic}: one message per frame'
        assert {t for t, _ in entries} == {msgtype}
        used.add(topic)
        return [m for _, m in entries]

    image_topic = layout.compressed_image_topic if options.compressed else layout.image_topic
    image_type = 'sensor_msgs/msg/CompressedImage' if options.compressed else 'sensor_msgs/msg/Image'
    images, infos = per_frame(image_topic, image_type), per_frame(layout.camera_info_topic,
                                                                  'sensor_msgs/msg/CameraInfo')
    for sample, image, info in zip(samples, images, infos):
        camera = sample.frames.get('camera', 'camera')
        # image
        assert image.header.frame_id == camera and stamp_ns(image.header) == sample.stamp_ns
        if options.compressed:
            decoded = cv2.cvtColor(cv2.imdecode(np.asarray(image.data), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            if sample.image_path:
                assert bytes(image.data) == Path(sample.image_path).read_bytes(), 'the original file, byte for byte'
            if sample.image_path or options.compressed_format == 'png':
                np.testing.assert_array_equal(decoded, sample.image)
            else:
                # Re-encoded at the options' quality: exactly what OpenCV gives for the same pixels and quality.
                ok, jpeg = cv2.imencode('.jpg', cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR),
                                        [cv2.IMWRITE_JPEG_QUALITY, options.jpeg_quality])
                assert ok and bytes(image.data) == jpeg.tobytes()
                error = np.mean((decoded.astype(float) - sample.image) ** 2)
                assert 10 * np.log10(255.0 ** 2 / error) > 30.0, 'PSNR of the re-encoded image'
            kind = 'jpeg' if bytes(image.data[:2]) == b'\xff\xd8' else 'png'
            assert image.format == f'rgb8; {kind} compressed bgr8'
        else:
            assert (image.encoding, image.height, image.width, image.step, image.is_bigendian) == \
                ('rgb8', sample.height, sample.width, 3 * sample.width, 0)
            np.testing.assert_array_equal(np.asarray(image.data).reshape(sample.image.shape), sample.image)
        # camera_info
        K = sample.intrinsics.K
        assert info.header.frame_id == camera and stamp_ns(info.header) == sample.stamp_ns
        assert (info.width, info.height, info.distortion_model) == (sample.width, sample.height, 'plumb_bob')
        np.testing.assert_array_equal(info.k, K.reshape(-1))
        np.testing.assert_array_equal(info.r, np.eye(3).reshape(-1))
        np.testing.assert_array_equal(info.p, np.hstack([K, np.zeros((3, 1))]).reshape(-1))
        distortion = sample.intrinsics.distortion if sample.intrinsics.distortion.size else np.zeros(5)
        np.testing.assert_array_equal(info.d, distortion)
        # transforms: the mounting and the ego motion are the sample's
        for role, T in sample.extrinsics.items():
            frame = sample.frames.get(role, role)
            if frame != camera:
                np.testing.assert_allclose(tree.camera_from(camera, sample.stamp_ns, frame, sample.stamp_ns), T,
                                           atol=1e-6)
        if sample.ego_pose is not None:
            world = sample.frames.get('world', 'map')
            root, T_world_from_camera = tree.to_root(camera, sample.stamp_ns)
            assert root == world
            np.testing.assert_allclose(T_world_from_camera, sample.ego_pose, atol=1e-6)

    # radar: one topic per role, each cloud in its sensor frame at its stamp
    radar_parts = {i: [] for i in range(len(samples))}
    for role in roles_of(samples[0]) or ['radar']:
        topic = layout.radar_topic_for(role)
        for i, (sample, cloud) in enumerate(zip(samples, per_frame(topic, 'sensor_msgs/msg/PointCloud2'))):
            frame = sample.frames.get(role, sample.frames.get('camera'))
            stamp = sample.stamps_ns.get(role, sample.stamp_ns)
            assert cloud.header.frame_id == frame and stamp_ns(cloud.header) == stamp
            points = cloud_array(cloud)
            if raw_radar is not None:
                raw = raw_radar(sample, role)
                assert [f.name for f in cloud.fields] == NUSCENES_PCD_FIELDS and cloud.point_step == 43
                assert np.asarray(cloud.data).tobytes() == raw.tobytes(), 'the raw 43-byte records, unchanged'
                rcs, v_radial = points['rcs'], None
                vxy = np.stack([points['vx_comp'], points['vy_comp']], axis=1)
            else:
                names = RADAR_FIELD_NAMES[sample.source]
                assert [f.name for f in cloud.fields] == names and {f.datatype for f in cloud.fields} == {7}
                rcs = points[names[3]] if len(names) > 3 else None
                if sample.source == 'nuscenes':
                    v_radial, vxy = None, np.stack([points['vx_comp'], points['vy_comp']], axis=1)
                else:
                    v_radial, vxy = (points['v_r'] if 'v_r' in names else None), None
            xyz = np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float64)
            T = applied(sample, role) if role in sample.extrinsics else np.eye(4)
            if role in sample.extrinsics and frame != sample.frames['camera']:
                np.testing.assert_allclose(tree.camera_from(sample.frames['camera'], sample.stamp_ns, frame, stamp),
                                           T, atol=1e-6)
            radar_parts[i].append((transform_points(xyz, T), rcs, v_radial, vxy))
    for i, sample in enumerate(samples):
        xyz = np.concatenate([p[0] for p in radar_parts[i]])
        np.testing.assert_allclose(xyz, sample.radar.xyz, atol=POINT_TOLERANCE)
        if radar_parts[i][0][1] is not None:
            np.testing.assert_array_equal(np.concatenate([p[1] for p in radar_parts[i]]), sample.radar.rcs)
        if radar_parts[i][0][2] is not None:
            np.testing.assert_array_equal(np.concatenate([p[2] for p in radar_parts[i]]), sample.radar.v_radial)
        if radar_parts[i][0][3] is not None:
            np.testing.assert_array_equal(np.concatenate([p[3] for p in radar_parts[i]]), sample.radar.vxy)

    # lidar cloud, or the sparse GT image for sources without points; dense GT on request
    if options.lidar and samples[0].lidar_xyz is not None:
        for sample, cloud in zip(samples, per_frame(layout.lidar_topic, 'sensor_msgs/msg/PointCloud2')):
            frame = sample.frames['lidar']
            assert cloud.header.frame_id == frame and stamp_ns(cloud.header) == sample.stamps_ns['lidar']
            assert [(f.name, f.datatype, f.count) for f in cloud.fields] == [('x', 7, 1), ('y', 7, 1), ('z', 7, 1)]
            points = cloud_array(cloud)
            xyz = np.stack([points['x'], points['y'], points['z']], axis=1).astype(np.float64)
            np.testing.assert_allclose(transform_points(xyz, applied(sample, 'lidar')), sample.lidar_xyz,
                                       atol=POINT_TOLERANCE)
    depth_topics = []
    if options.lidar and samples[0].lidar_xyz is None:
        depth_topics.append((layout.depth_gt_topic, 'depth_gt'))
    if options.dense_gt and samples[0].depth_gt_dense is not None:
        depth_topics.append((layout.depth_gt_dense_topic, 'depth_gt_dense'))
    for topic, attribute in depth_topics:
        for sample, image in zip(samples, per_frame(topic, 'sensor_msgs/msg/Image')):
            assert (image.encoding, image.header.frame_id) == ('32FC1', sample.frames['camera'])
            assert stamp_ns(image.header) == sample.stamp_ns
            depth = np.asarray(image.data).view(np.float32).reshape(sample.height, sample.width)
            truth = getattr(sample, attribute)
            np.testing.assert_array_equal(np.isnan(depth), truth <= 0)
            np.testing.assert_array_equal(depth[truth > 0], truth[truth > 0])
    mounted = any(sample.frames.get(role, role) != sample.frames['camera'] for role in samples[0].extrinsics)
    transform_topics = ({layout.tf_static_topic} if mounted else set()) | \
        ({layout.tf_topic} if samples[0].ego_pose is not None else set())
    assert set(by_topic) == used | transform_topics, 'no other topic; /tf_static iff a sensor has its own frame'
    return messages


def check_frames(path, samples):
    """``bag_frames`` gives back what the core needs, equal to the samples."""
    frames = list(bag_frames(path))
    assert len(frames) == len(samples)
    for frame, sample in zip(frames, samples):
        assert (frame.frame_id, frame.stamp_ns, frame.camera_frame) == (sample.frame_id, sample.stamp_ns,
                                                                        sample.frames['camera'])
        np.testing.assert_array_equal(frame.rgb(), sample.image)
        intrinsics = frame.intrinsics()
        np.testing.assert_array_equal(intrinsics.K, sample.intrinsics.K)
        assert (intrinsics.width, intrinsics.height) == (sample.width, sample.height)
        radar = frame.radar_points()
        np.testing.assert_allclose(radar.xyz, sample.radar.xyz, atol=POINT_TOLERANCE)
        np.testing.assert_array_equal(radar.rcs, sample.radar.rcs)
        # nuScenes' v_radial is computed from (vx, vy) and the position, which went through float32 and back.
        np.testing.assert_allclose(radar.v_radial, sample.radar.v_radial, atol=1e-5)
        assert radar.frame_id == sample.frames['camera']
        for role, T in sample.extrinsics.items():
            if sample.frames.get(role, sample.frames['camera']) != sample.frames['camera']:
                np.testing.assert_allclose(frame.extrinsics()[sample.frames[role]], T, atol=1e-6)
        if sample.lidar_xyz is not None:
            np.testing.assert_allclose(frame.lidar_points(), sample.lidar_xyz, atol=POINT_TOLERANCE)
        gt = frame.ground_truth()
        valid = gt > 0
        # Points a few micrometres from where they were may change pixel or win a z-buffer tie: very rarely.
        assert np.count_nonzero(valid != (sample.depth_gt > 0)) <= 0.01 * np.count_nonzero(valid)
        both = valid & (sample.depth_gt > 0)
        assert np.mean(np.abs(gt[both] - sample.depth_gt[both]) < 1e-3) > 0.99
    return frames


# ------------------------------------------------------------------------------------------------ the sources
@pytest.fixture(scope='module')
def synthetic_samples():
    reader = open_reader('synthetic', config=SYNTHETIC_CONFIG, radar_image=False, boxes=False)
    return list(reader)


def test_synthetic_round_trip(synthetic_samples, tmp_path):
    path = tmp_path / 'synthetic'
    summary = write_bag(synthetic_samples, path, BagWriteOptions(dense_gt=True))
    assert summary.frames == 4 and summary.path == path
    assert summary.frame_ids == [s.frame_id for s in synthetic_samples]
    messages = check_bag(path, synthetic_samples, BagWriteOptions(dense_gt=True))
    tf_static = next(m for t, _, _, m in messages if t == '/tf_static')
    assert {(tr.header.frame_id, tr.child_frame_id) for tr in tf_static.transforms} == \
        {('base_link', 'camera_optical'), ('base_link', 'radar'), ('base_link', 'lidar')}, 'a vehicle-rooted tree'
    assert [t for t, _, _, _ in messages][0] == '/tf_static', 'extrinsics come first'
    frames = check_frames(path, synthetic_samples)
    np.testing.assert_array_equal(frames[1].dense_ground_truth(), synthetic_samples[1].depth_gt_dense)


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_synthetic_compressed_reencodes_pixels(synthetic_samples, tmp_path, fmt):
    options = BagWriteOptions(compressed=True, compressed_format=fmt, lidar=False)
    write_bag(synthetic_samples[:2], tmp_path / 'bag', options)
    check_bag(tmp_path / 'bag', synthetic_samples[:2], options)


def test_astyx_round_trip_on_real_bytes(astyx_root, tmp_path):
    samples = list(open_reader('astyx', astyx_root, frames='0-1', radar_image=False, boxes=False))
    for options in (BagWriteOptions(compressed=True), BagWriteOptions()):
        path = tmp_path / f'astyx_{options.compressed}'
        write_bag(samples, path, options)
        check_bag(path, samples, options)
    check_frames(tmp_path / 'astyx_True', samples)


def test_nuscenes_round_trip_with_raw_18_field_radar(nuscenes_fixture, tmp_path):
    pytest.importorskip('nuscenes')
    root, _ = nuscenes_fixture
    reader = open_reader('nuscenes', root, split='train', radars=['RADAR_FRONT', 'RADAR_FRONT_LEFT'],
                         radar_image=False, boxes=False)
    samples = list(reader)
    records = nuscenes_radar_records(reader)
    options = BagWriteOptions(compressed=True)
    write_bag(samples, tmp_path / 'nuscenes', options, radar_records=records)

    def raw(sample, role):
        # The PCD file itself, read by the package's PCD reader, independent of the provider under test.
        channel = {'radar': 'RADAR_FRONT', 'radar_front_left': 'RADAR_FRONT_LEFT'}[role]
        token = reader.nusc.get('sample', sample.frame_id)['data'][channel]
        return read_nuscenes_pcd(root / reader.nusc.get('sample_data', token)['filename'])[0]

    messages = check_bag(tmp_path / 'nuscenes', samples, options, raw_radar=raw)
    topics = {t for t, _, _, _ in messages}
    assert {'/radar/points', '/radar/radar_front_left/points', '/tf'} <= topics
    stamps = {t for topic, _, t, _ in messages if topic == '/tf'}
    assert {s.stamps_ns['radar'] for s in samples} <= stamps and {s.stamp_ns for s in samples} <= stamps, \
        'ego poses at the camera and the sensor stamps'
    frames = check_frames(tmp_path / 'nuscenes', samples)
    np.testing.assert_array_equal(frames[0].radar_points().vxy, samples[0].radar.vxy)


def test_nuscenes_without_raw_records_uses_the_six_field_layout(nuscenes_fixture, tmp_path):
    pytest.importorskip('nuscenes')
    root, _ = nuscenes_fixture
    samples = list(open_reader('nuscenes', root, split='val', radar_image=False, boxes=False))
    write_bag(samples, tmp_path / 'nuscenes')
    check_bag(tmp_path / 'nuscenes', samples)
    check_frames(tmp_path / 'nuscenes', samples)


def test_zju_round_trip_depth_images_and_original_png(zju_fixture, tmp_path):
    root, _ = zju_fixture
    cropped = list(open_reader('zju', root, radar_image=False))
    options = BagWriteOptions(dense_gt=True)
    write_bag(cropped, tmp_path / 'cropped', options)
    messages = check_bag(tmp_path / 'cropped', cropped, options)
    assert '/tf_static' not in {t for t, _, _, _ in messages}, 'the radar is in the camera frame: no transform'
    frames = check_frames(tmp_path / 'cropped', cropped)
    np.testing.assert_array_equal(frames[0].ground_truth(), cropped[0].depth_gt)
    np.testing.assert_array_equal(frames[0].dense_ground_truth(), cropped[0].depth_gt_dense)

    full = list(open_reader('zju', root, crop_rows=None, frames='0-1', radar_image=False))
    assert full[0].image_path is not None
    options = BagWriteOptions(compressed=True)
    write_bag(full, tmp_path / 'full', options)
    check_bag(tmp_path / 'full', full, options)
