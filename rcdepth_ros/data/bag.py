"""
A recorded rosbag2 drive as a data set: ``rcdepth eval --dataset bag --root DRIVE`` and training on recordings.

Any bag in the package's topic layout (``rcdepth make-bag`` writes one; ``core.bags.BagLayout`` names the topics)
is read through ``core.bags.bag_frames``: one Sample per camera image, with the camera_info, radar and lidar that
belong to it moved into the camera frame through the bag's TF, and the lidar (else the bag's ground-truth depth
image) as sparse ground truth. Frame ids are the data-set ids the package's writer stored, else the images'
positions.

A bag is read in order: ``iterate`` walks it once; ``sample(frame_id)`` walks it up to that frame.
"""

import numpy as np

from rcdepth_ros.core.bags import bag_frames, bag_info, BagLayout
from rcdepth_ros.data.readers import SampleReader
from rcdepth_ros.data.sample import Sample
from rcdepth_ros.errors import DatasetError, RcdepthError


class BagReader(SampleReader):
    """Samples of a rosbag2 bag in the package's layout (see the module docstring)."""

    source = 'bag'

    def __init__(self, root, split=None, window_s=0.1):
        """Open the bag at ``root`` (directory or file); ``window_s``: clouds within this of an image belong to it."""
        if split is not None:
            raise DatasetError(f'bag {root}: a bag has no splits (got split={split!r}); select frames instead')
        self.path = root
        self.window_s = float(window_s)
        info = bag_info(root)
        layout = BagLayout.from_dict(info.layout_data()) if info.layout_data() is not None else BagLayout()
        images = [info.topics[t].count for t in (layout.image_topic, layout.compressed_image_topic)
                  if t in info.topics]
        if not images:
            raise DatasetError(f'bag {root}: no image topic ({layout.image_topic} or '
                               f'{layout.compressed_image_topic})')
        stored = info.frame_ids()
        ids = stored if stored is not None and len(stored) == images[0] else [str(i) for i in range(images[0])]
        super().__init__(ids)

    def _frames(self, wanted):
        """Yield ``(frame id, Sample or DatasetError)`` for the frames in ``wanted``, in bag order."""
        for frame in bag_frames(self.path, window_s=self.window_s):
            if frame.frame_id in wanted:
                try:
                    yield frame.frame_id, _sample(frame)
                except DatasetError as exc:
                    yield frame.frame_id, exc
                wanted = wanted - {frame.frame_id}
                if not wanted:
                    return

    def _load(self, frame_id):
        for _, sample in self._frames({frame_id}):
            if isinstance(sample, DatasetError):
                raise sample
            return sample
        raise DatasetError(f'bag {self.path}: frame {frame_id} not found while reading the bag')

    def iterate(self, on_error='raise'):
        """Yield the selected frames' Samples in bag order, reading the bag once (see ``SampleReader.iterate``)."""
        self.skipped = []
        self._check_on_error(on_error)
        for frame_id, sample in self._frames(set(self._frame_ids)):
            if isinstance(sample, DatasetError):
                self._skip_or_raise(frame_id, sample, on_error)
                continue
            yield sample


def _sample(frame):
    """Return the Sample of a BagFrame; a frame the core cannot read raises DatasetError naming it."""
    try:
        intrinsics = frame.intrinsics()
        image = frame.rgb()
        radar = frame.radar_points()
        lidar = frame.lidar_points()
        gt = frame.ground_truth()
        dense = frame.dense_ground_truth()
        extrinsics = frame.extrinsics()
    except RcdepthError as exc:
        raise DatasetError(f'bag frame {frame.frame_id} ({frame.stamp_ns} ns): {exc}') from None
    if gt is None:
        gt = np.zeros((intrinsics.height, intrinsics.width), np.float32)
    return Sample(source='bag', frame_id=frame.frame_id, stamp_ns=frame.stamp_ns, image=image,
                  intrinsics=intrinsics, radar=radar, lidar_xyz=lidar, depth_gt=gt, depth_gt_dense=dense,
                  extrinsics=extrinsics, frames={'camera': frame.camera_frame})
