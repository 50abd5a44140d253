"""The Astyx HiRes2019 reader on the real files, and on a temporary copy with broken files."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rcdepth_ros.core.geometry.projection import project_points, sparse_depth_image
from rcdepth_ros.core.geometry.transforms import (quaternion_xyzw_from_matrix, transform_from_translation_quaternion,
                                                  transform_points)
from rcdepth_ros.data.astyx import (ASTYX_EPOCH_NS, ASTYX_FRAME_PERIOD_NS, AstyxReader, read_astyx_boxes,
                                    read_astyx_calibration, read_astyx_lidar)
from rcdepth_ros.data.radar_files import read_astyx_radar
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import DatasetError


@pytest.fixture(scope='module')
def reader(astyx_root):
    return AstyxReader(astyx_root)


def test_index_and_splits_come_from_dataset_json(astyx_root, reader):
    index = json.loads((astyx_root / 'dataset.json').read_text())['data']
    assert len(reader) == len(index)
    assert reader.frame_ids == [f'{int(k):06d}' for k in sorted(index, key=int)]
    train = AstyxReader(astyx_root, split='train')
    val = open_reader('astyx', astyx_root, split='val')
    assert train.frame_ids[0] == '000000' and train.frame_ids[-1] == '000349' and len(train) == 350
    assert val.frame_ids[0] == '000350' and val.frame_ids[-1] == '000435' and len(val) == 86
    assert reader.select('0-10,20').frame_ids == [f'{i:06d}' for i in range(11)] + ['000020']
    assert AstyxReader(astyx_root, frames='5,3').frame_ids == ['000005', '000003']
    with pytest.raises(DatasetError, match='frame 000003 is not among the 86 frames'):
        val.select('3')


def test_frame_id_spellings_and_unknown_frames(reader, astyx_root):
    assert reader.resolve_frame_id(42) == reader.resolve_frame_id('42') == reader.resolve_frame_id('000042')
    with pytest.raises(DatasetError, match='frame 999999 is not in .*dataset.json'):
        reader.sample(999999)
    with pytest.raises(DatasetError, match="frame id 'front' is not a frame number"):
        reader.sample('front')


def test_sample_of_frame_0(reader, astyx_root):
    sample = reader.sample(0)
    assert sample.source == 'astyx' and sample.frame_id == '000000'
    assert sample.image.shape == (618, 2048, 3) and sample.image.dtype == np.uint8
    assert sample.intrinsics.width == 2048 and sample.intrinsics.height == 618
    assert sample.intrinsics.K[0, 0] == pytest.approx(1817.98103)
    assert sample.image_path.endswith('camera_front/000000.jpg')
    # RGB, not BGR: the JPEG decoded by cv2 is BGR, the sample must be its channel reversal.
    import cv2
    bgr = cv2.imread(sample.image_path)
    assert np.array_equal(sample.image, bgr[..., ::-1])

    calib = read_astyx_calibration(astyx_root / 'calibration' / '000000.json')
    T_cam_from_radar = np.linalg.inv(calib.T_ref_from['camera_front']) @ calib.T_ref_from['radar_6455']
    np.testing.assert_allclose(sample.extrinsics['radar'], T_cam_from_radar, atol=1e-12)
    raw = read_astyx_radar(astyx_root / 'radar_6455' / '000000.txt')
    np.testing.assert_allclose(sample.radar.xyz, transform_points(raw.xyz, T_cam_from_radar), atol=1e-4)
    np.testing.assert_array_equal(sample.radar.rcs, raw.rcs)
    np.testing.assert_array_equal(sample.radar.v_radial, raw.v_radial)
    assert sample.radar.frame_id == 'camera_front'

    lidar = read_astyx_lidar(astyx_root / 'lidar_vlp16' / '000000.txt')
    assert lidar.dtype.names == ('X', 'Y', 'Z', 'Reflectivity', 'LaserID', 'Timestamp')
    assert sample.lidar_xyz.shape == (len(lidar), 3) and sample.lidar_xyz.dtype == np.float32
    np.testing.assert_allclose(sample.lidar_xyz[0], transform_points(
        [[lidar['X'][0], lidar['Y'][0], lidar['Z'][0]]], sample.extrinsics['lidar'])[0], atol=1e-4)
    expected = sparse_depth_image(sample.lidar_xyz, sample.intrinsics.K, 2048, 618)
    np.testing.assert_array_equal(sample.depth_gt, expected)
    assert sample.depth_gt.dtype == np.float32 and 1000 < np.count_nonzero(sample.depth_gt) < 3000
    assert sample.depth_gt_dense is None

    assert sample.radar_channels == ('depth', 'rcs', 'v_radial', 'mask')
    assert sample.radar_image.shape == (618, 2048, 4)
    hits = project_points(sample.radar.xyz, sample.intrinsics.K, 2048, 618)
    assert np.count_nonzero(sample.radar_image[..., 3]) == len(np.unique(hits.v * 2048 + hits.u))

    assert sample.frames == {'camera': 'camera_front', 'radar': 'radar_6455', 'lidar': 'lidar_vlp16'}
    assert sample.stamp_ns == ASTYX_EPOCH_NS and set(sample.stamps_ns.values()) == {sample.stamp_ns}
    assert reader.sample(7).stamp_ns - sample.stamp_ns == 7 * ASTYX_FRAME_PERIOD_NS


def test_boxes_in_the_camera_frame(reader, astyx_root):
    sample = reader.sample(0)
    raw = read_astyx_boxes(astyx_root / 'groundtruth_obj3d' / '000000.json')
    assert len(sample.boxes) == len(raw) > 0
    T_cam_from_ref = np.linalg.inv(read_astyx_calibration(astyx_root / 'calibration' / '000000.json')
                                   .T_ref_from['camera_front'])
    for box, ref in zip(sample.boxes, raw):
        assert box.frame_id == 'camera_front' and box.label == ref.label
        np.testing.assert_allclose(box.corners(), transform_points(ref.corners(), T_cam_from_ref),
                                   atol=1e-5)
    # Parked cars: centres ahead of the camera, bottoms below it (y down), heights of cars.
    cars = [b for b in sample.boxes if b.label == 'Car']
    assert all(b.center[2] > 2 for b in cars)
    assert all(1.2 < b.size[2] < 2.2 and 3 < b.size[0] < 5.5 for b in cars)
    # The box height axis is vertical (camera -y, up to the camera tilt), so the quaternion is read as w,x,y,z.
    for box in cars:
        assert abs(box.rotation[:, 2] @ np.array([0.0, -1.0, 0.0])) > 0.98


def test_box_convention_puts_lidar_points_inside_the_boxes(reader):
    """Read as (w, x, y, z) the boxes hold more lidar points than with the conjugate or (x, y, z, w) order."""
    from rcdepth_ros.data.boxes import Box3D
    counts = {'wxyz': 0, 'conjugate': 0, 'xyzw': 0}
    for frame in (0, 100, 200, 300, 400):
        sample = reader.sample(frame)
        for box in sample.boxes:
            counts['wxyz'] += int(box.contains(sample.lidar_xyz, 0.1).sum())
            # Re-express the other readings in the camera frame with the same centre.
            T_cam_from_ref = sample.extrinsics['radar']          # reference frame = radar frame
            R_ref = T_cam_from_ref[:3, :3].T @ box.rotation
            for name, R_alt in (('conjugate', R_ref.T), ('xyzw', _xyzw_misread(R_ref))):
                alt = Box3D(box.center, box.size, T_cam_from_ref[:3, :3] @ R_alt)
                counts[name] += int(alt.contains(sample.lidar_xyz, 0.1).sum())
    assert counts['wxyz'] > 1.08 * max(counts['conjugate'], counts['xyzw']), counts


def _xyzw_misread(R):
    """Return the rotation obtained by reading the (w, x, y, z) quaternion of R as (x, y, z, w)."""
    x, y, z, w = quaternion_xyzw_from_matrix(R)
    return transform_from_translation_quaternion([0, 0, 0], (y, z, w, x))[:3, :3]


# ---------------------------------------------------------------------- bad input on a temporary copy
@pytest.fixture
def astyx_copy(astyx_root, tmp_path):
    """Return a copy of frames 0-2 of Astyx (files symlinked) whose files a test may replace."""
    index = json.loads((astyx_root / 'dataset.json').read_text())
    keep = {k: v for k, v in index['data'].items() if int(k) <= 2}
    for entry in keep.values():
        for relative in entry.values():
            target = tmp_path / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(astyx_root / relative, target)
    # Frames the copy does not hold (as on a partial download): listed in the index, no files.
    keep['545'] = {k: v.replace('000000', '000545') for k, v in keep['0'].items()}
    index['data'] = keep
    (tmp_path / 'dataset.json').write_text(json.dumps(index))
    return tmp_path


def _replace(root, relative, data):
    path = Path(root) / relative
    path.unlink()
    path.write_bytes(data)
    return path


def test_a_frame_listed_but_absent_names_the_missing_file(astyx_copy):
    reader = AstyxReader(astyx_copy)
    assert reader.frame_ids == ['000000', '000001', '000002', '000545']
    with pytest.raises(DatasetError, match=r'calibration/000545.json \(frame 000545\): file not found'):
        reader.sample('000545')


@pytest.mark.parametrize('relative, data, message', [
    ('camera_front/000001.jpg', None, r'truncated JPEG'),
    ('camera_front/000001.jpg', b'not a jpeg at all', r'corrupt or not an image'),
    ('camera_front/000001.jpg', b'', r'empty file'),
    ('radar_6455/000001.txt', b'', r'radar'),
    ('lidar_vlp16/000001.txt', b'', r'empty file'),
    ('lidar_vlp16/000001.txt', b'X Y Z Reflectivity\n1 2 3\n', r'do not fill rows'),
    ('lidar_vlp16/000001.txt', b'A B C\n1 2 3\n', r"lacks column\(s\) \['X', 'Y', 'Z'\]"),
    ('calibration/000001.json', b'{"sensors": [', r'not valid JSON'),
    ('groundtruth_obj3d/000001.json', b'{"objects": [{"center3d": [1, 2, 3]}]}', r'object 0 is not a box'),
])
def test_a_bad_file_raises_dataset_error_naming_file_and_frame(astyx_copy, relative, data, message):
    if data is None:                                  # a JPEG cut in the middle
        data = (astyx_copy / relative).read_bytes()[:20000]
    _replace(astyx_copy, relative, data)
    reader = AstyxReader(astyx_copy)
    with pytest.raises(DatasetError, match=message) as info:
        reader.sample(1)
    assert '000001' in str(info.value) and relative.split('/')[0] in str(info.value)
    # Skipping goes on past the bad frame and says why.
    good = [s.frame_id for s in reader.select('0-2').iterate(on_error='skip')]
    assert good == ['000000', '000002']


def test_calibration_without_camera_k(astyx_copy):
    path = astyx_copy / 'calibration' / '000001.json'
    calib = json.loads(path.read_text())
    for sensor in calib['sensors']:
        sensor['calib_data'].pop('K', None)
    _replace(astyx_copy, 'calibration/000001.json', json.dumps(calib).encode())
    with pytest.raises(DatasetError, match=r"calibration/000001.json \(frame 000001\): camera 'camera_front' has "
                                           r'no calib_data.K'):
        AstyxReader(astyx_copy).sample(1)


def test_iterate_raise_and_skip_count(astyx_copy):
    reader = AstyxReader(astyx_copy, radar_image=False)
    with pytest.raises(DatasetError, match='000545'):
        list(reader)
    samples = list(reader.iterate(on_error='skip'))
    assert [s.frame_id for s in samples] == ['000000', '000001', '000002']
    assert [s.frame_id for s in reader.skipped] == ['000545'] and 'file not found' in reader.skipped[0].reason
    assert samples[0].radar_image is None


def test_bad_index(tmp_path):
    with pytest.raises(DatasetError, match='dataset.json: file not found'):
        AstyxReader(tmp_path)
    (tmp_path / 'dataset.json').write_text('{"data": {}}')
    with pytest.raises(DatasetError, match='no "data" mapping'):
        AstyxReader(tmp_path)
    (tmp_path / 'dataset.json').write_text('{"data": {"x": {}}}')
    with pytest.raises(DatasetError, match="frame key 'x' is not a number"):
        AstyxReader(tmp_path)
    (tmp_path / 'dataset.json').write_text('{"data": {"0": {}}}')
    with pytest.raises(DatasetError, match='unknown split'):
        AstyxReader(tmp_path, split='test')
    with pytest.raises(DatasetError, match='lists no calibration file'):
        AstyxReader(tmp_path).sample(0)
