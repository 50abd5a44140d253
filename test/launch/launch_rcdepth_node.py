"""
launch/rcdepth.launch.py started for real (launch_testing), with a tiny model and parameter extrinsics.

The node comes up active, its topics exist, and it publishes one depth image per input pair, with the input's
header.

Run by test/launch/test_launch_running.py (wherever ROS 2 launch and launch_testing import; skipped otherwise),
or by hand: ``launch_test test/launch/launch_rcdepth_node.py``. Not named test_*.py, so launch_testing's own
pytest plugin (where it loads) does not collect it a second time.
"""

from pathlib import Path
import sys
import unittest

sys.path[:0] = [p for p in (str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1]))
                if p not in sys.path]

import launch  # noqa: E402 - after the path set-up above (``launch_test`` runs this file by path)
from launch.actions import IncludeLaunchDescription  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
from launch_rig import LAUNCH_DIR, RosClient, source_prefix, tiny_checkpoint, work_folder  # noqa: E402
from launch_rig import write_parameters  # noqa: E402
import launch_testing  # noqa: E402
import launch_testing.actions  # noqa: E402
import launch_testing.asserts  # noqa: E402
import launch_testing.markers  # noqa: E402

from rcdepth_ros.nodes.params import extrinsics_overrides  # noqa: E402
from rcdepth_ros.ros_env import configure_ros_environment  # noqa: E402
from support.frame_messages import CAMERA_FRAME, FrameMessageFactory  # noqa: E402

NAMESPACE = '/launch_rcdepth'
NODE = f'{NAMESPACE}/rcdepth_node'
TOPICS = {'image': f'{NAMESPACE}/camera/image', 'camera_info': f'{NAMESPACE}/camera/camera_info',
          'radar': f'{NAMESPACE}/radar/points'}
T0 = 1_700_000_000 * 10 ** 9
FRAMES = 4


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start rcdepth.launch.py on this checkout with a tiny model and parameter extrinsics."""
    configure_ros_environment()
    work = work_folder('launch_rcdepth')
    source_prefix(work)
    parameters = dict(extrinsics_overrides(FrameMessageFactory.extrinsics(), CAMERA_FRAME), warmup=False)
    params_file = write_parameters(work / 'params.yaml', 'rcdepth_node', parameters)
    arguments = {'namespace': NAMESPACE, 'params_file': str(params_file),
                 'model_path': str(tiny_checkpoint(work)), 'device': 'cpu', **TOPICS}
    include = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_DIR / 'rcdepth.launch.py')),
                                       launch_arguments=arguments.items())
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()]), {'work': work}


class TestRcdepthLaunch(unittest.TestCase):
    """While the launch runs."""

    @classmethod
    def setUpClass(cls):
        """Start the test's own ROS client."""
        cls.client = RosClient('launch_rcdepth_client')

    @classmethod
    def tearDownClass(cls):
        """Stop it."""
        cls.client.close()

    def test_1_node_configures_and_activates_itself(self):
        self.assertTrue(self.client.wait_for_state(NODE, 'active', timeout=120.0),
                        f'{NODE} did not reach the active state')

    def test_2_topics(self):
        expected = {f'{NAMESPACE}/depth/image', f'{NAMESPACE}/depth/camera_info', f'{NAMESPACE}/saliency/image',
                    f'{NAMESPACE}/radar/depth_image', '/diagnostics', *TOPICS.values()}
        self.assertTrue(self.client.spin_until(lambda: expected <= set(self.client.topics()), 30.0),
                        f'missing topics: {sorted(expected - set(self.client.topics()))}')
        node = self.client.node
        for topic in TOPICS.values():
            self.assertEqual(node.count_subscribers(topic), 1, topic)
        self.assertEqual(node.count_publishers(f'{NAMESPACE}/depth/image'), 1)

    def test_3_one_depth_image_per_input_pair(self):
        from sensor_msgs.msg import CameraInfo, Image, PointCloud2
        from rcdepth_ros.core.messages.msgtypes import ros_message_types, stamp_to_ns
        client = self.client
        messages = FrameMessageFactory(ros_message_types(), width=160, height=120)
        depth = client.collect(Image, f'{NAMESPACE}/depth/image')
        publishers = {'camera_info': client.publisher(CameraInfo, TOPICS['camera_info']),
                      'radar': client.publisher(PointCloud2, TOPICS['radar']),
                      'image': client.publisher(Image, TOPICS['image'])}
        self.assertTrue(client.spin_until(lambda: all(p.get_subscription_count() for p in publishers.values()) and
                                          client.node.count_subscribers(f'{NAMESPACE}/depth/image') >= 1 and
                                          client.node.count_publishers(f'{NAMESPACE}/depth/image') >= 1, 30.0))
        client.spin_for(1.0)            # the node's publisher matches the collector
        stamps = [T0 + k * 100_000_000 for k in range(FRAMES)]
        for k, stamp in enumerate(stamps):
            publishers['camera_info'].publish(messages.camera_info(stamp))
            publishers['radar'].publish(messages.radar(stamp))
            publishers['image'].publish(messages.image(stamp))
            self.assertTrue(client.spin_until(lambda: len(depth) >= k + 1, 60.0), f'no depth for frame {k}')
        client.spin_for(2.0)
        self.assertEqual([stamp_to_ns(m.header) for m in depth], stamps)
        for msg in depth:
            self.assertEqual((msg.encoding, msg.width, msg.height, msg.header.frame_id),
                             ('32FC1', 160, 120, CAMERA_FRAME))


@launch_testing.post_shutdown_test()
class TestRcdepthLaunchShutdown(unittest.TestCase):
    """After the launch is stopped."""

    def test_the_node_exits_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
