"""
launch/playback_eval.launch.py started for real (launch_testing), on a 4-frame synthetic bag played on sim time.

The player feeds the depth node and the evaluator. The depth node comes up active, the topics exist, every played frame
gets exactly one depth image (stamped like it), and the evaluator's report, written when the launch stops, holds
every frame.

Run by test/launch/test_launch_running.py (wherever ROS 2 launch and launch_testing import; skipped otherwise),
or by hand: ``launch_test test/launch/launch_playback_eval.py``.
"""

import json
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

from rcdepth_ros.ros_env import configure_ros_environment  # noqa: E402

FRAMES = 4
# Bag time runs at a fifth of real time (2 frames a second): the tiny model keeps up on a loaded machine, so the
# keep-latest slot drops nothing and every played frame must be answered.
RATE = '0.2'


def _bag(work):
    """Write the synthetic bag and the extrinsics parameters file (as ``rcdepth demo`` does); return both paths."""
    from rcdepth_ros.core.bags import write_bag
    from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
    from rcdepth_ros.evaluation.bags import bag_static_extrinsics
    from rcdepth_ros.nodes.params import extrinsics_overrides
    reader = SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=FRAMES, width=192, height=112))
    bag = write_bag(reader, work / 'bag').path
    camera, transforms = bag_static_extrinsics(bag)
    values = extrinsics_overrides(transforms, camera)
    extrinsics = write_parameters(work / 'extrinsics.yaml', None, values)
    return bag, extrinsics


@launch_testing.markers.keep_alive
def generate_test_description():
    """Start playback_eval.launch.py on this checkout: a tiny model, a small bag, the report in a temp folder."""
    configure_ros_environment()
    work = work_folder('launch_playback')
    source_prefix(work)
    bag, extrinsics = _bag(work)
    report = work / 'report.json'
    arguments = {'bag': str(bag), 'rate': RATE, 'extrinsics_file': str(extrinsics),
                 'model_path': str(tiny_checkpoint(work)), 'report': str(report)}
    include = IncludeLaunchDescription(PythonLaunchDescriptionSource(str(LAUNCH_DIR / 'playback_eval.launch.py')),
                                       launch_arguments=arguments.items())
    context = {'report': report, 'bag': bag}
    return launch.LaunchDescription([include, launch_testing.actions.ReadyToTest()]), context


class TestPlaybackEvalLaunch(unittest.TestCase):
    """While the launch runs."""

    @classmethod
    def setUpClass(cls):
        """Start the test's own ROS client and listen to the depth output from the start."""
        from sensor_msgs.msg import Image
        cls.client = RosClient('launch_playback_client')
        cls.depth = cls.client.collect(Image, '/depth/image')

    @classmethod
    def tearDownClass(cls):
        """Stop it."""
        cls.client.close()

    def test_1_depth_node_is_active_and_the_evaluator_runs(self):
        self.assertTrue(self.client.wait_for_state('/rcdepth_node', 'active', timeout=120.0))
        self.assertTrue(self.client.spin_until(
            lambda: 'rcdepth_eval_node' in self.client.node.get_node_names(), 30.0))

    def test_2_topics(self):
        expected = {'/clock', '/camera/image', '/camera/camera_info', '/radar/points', '/lidar/points',
                    '/depth/image', '/depth/camera_info'}
        self.assertTrue(self.client.spin_until(lambda: expected <= set(self.client.topics()), 60.0),
                        f'missing topics: {sorted(expected - set(self.client.topics()))}')

    def test_3_one_depth_image_per_played_frame(self, bag):
        from rcdepth_ros.core.bags import bag_frames
        from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
        stamps = [frame.stamp_ns for frame in bag_frames(bag)]
        self.assertEqual(len(stamps), FRAMES)
        self.assertTrue(self.client.spin_until(lambda: len(self.depth) >= FRAMES, 180.0),
                        f'{len(self.depth)} depth images for {FRAMES} played frames')
        self.client.spin_for(3.0)        # nothing more may come
        self.assertEqual([stamp_to_ns(m.header) for m in self.depth], stamps)


@launch_testing.post_shutdown_test()
class TestPlaybackEvalShutdown(unittest.TestCase):
    """After the launch is stopped."""

    def test_the_report_holds_every_frame(self, report):
        data = json.loads(Path(report).read_text())
        self.assertEqual(data['frames'], FRAMES)
        self.assertEqual(data['evaluation']['evaluated'], FRAMES)

    def test_the_processes_exit_cleanly(self, proc_info):
        launch_testing.asserts.assertExitCodes(proc_info)
