"""rcdepth_eval_node: pairs depth with lidar by stamp, evaluates through the core, writes its report on close."""

import json

from node_harness import Harness
import numpy as np
import pytest

from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.messages.images import depth_to_image_msg
from rcdepth_ros.nodes.eval_node import EvalNode
from rcdepth_ros.nodes.params import extrinsics_overrides
from support.frame_messages import CAMERA_FRAME, FrameMessageFactory

T0 = 1_700_000_000 * 10 ** 9


@pytest.mark.parametrize('caps', [None, [40.0, 100.0]], ids=['default_caps', 'caps_40_100'])
def test_depth_equal_to_the_lidar_scores_zero_and_unmatched_frames_are_counted(ros_context, messages, tmp_path,
                                                                               caps):
    from rclpy.parameter import Parameter
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    output = tmp_path / 'sub' / 'report.json'
    values = dict(extrinsics_overrides(FrameMessageFactory.extrinsics(), CAMERA_FRAME), output=str(output))
    if caps is not None:
        values['caps'] = caps           # other caps than the metrics' defaults: every frame is scored at these
    namespace = '/ev' if caps is None else '/ev_caps'
    harness = Harness(ros_context, namespace)
    node = harness.add(EvalNode(namespace=namespace, context=ros_context,
                                parameter_overrides=[Parameter(k, value=v) for k, v in values.items()]))
    try:
        depth_pub = harness.publisher(Image, 'depth/image')
        info_pub = harness.publisher(CameraInfo, 'depth/camera_info')
        lidar_pub = harness.publisher(PointCloud2, 'lidar/points')
        for publisher in (depth_pub, info_pub, lidar_pub):
            assert harness.wait_for_subscribers(publisher)
        K = messages.intrinsics.K
        for i in range(3):
            stamp = T0 + i * 100_000_000
            truth = sparse_depth_image(messages.lidar_camera(stamp), K, 160, 120)
            depth = np.where(truth > 0, truth, 30.0).astype(np.float32)
            depth[:10] = np.nan                                  # rows outside the model's view: not evaluated
            header = messages.header(stamp, CAMERA_FRAME)
            lidar_pub.publish(messages.lidar(stamp))
            depth_pub.publish(depth_to_image_msg(depth, header, messages.types))
            info_pub.publish(messages.camera_info(stamp))
        lonely = messages.header(T0 + 10 ** 9, CAMERA_FRAME)                      # no lidar will ever come
        depth_pub.publish(depth_to_image_msg(np.ones((120, 160), np.float32), lonely, messages.types))
        info_pub.publish(messages.camera_info(T0 + 10 ** 9))
        assert harness.spin_until(lambda: node.counts['evaluated'] == 3 and node.counts['depth'] == 4, 10)
        node.close()
    finally:
        harness.close()
    report = json.loads(output.read_text())
    assert report['frames'] == 3 and report['evaluation']['unmatched'] == 1
    assert report['evaluation']['failed'] == 0
    assert len(report['per_frame']) == 3 and report['per_frame'][0]['frame_id'] == str(T0)
    keys = ['50', '70', '80'] if caps is None else ['40', '100']
    assert sorted(report['caps'], key=float) == keys
    assert all(sorted(frame['valid_pixels'], key=float) == keys for frame in report['per_frame'])
    for cap in keys:
        assert report['caps'][cap]['mae'] == pytest.approx(0.0, abs=1e-3)     # float32 depth vs float64 GT
        assert report['caps'][cap]['delta1'] == 1.0
    assert report['per_frame'][0]['valid_pixels'][keys[-1]] > 100
