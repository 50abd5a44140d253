"""The bag player: raw bytes with the bag's timing, latched topics, /clock, loop, types that cannot be imported."""

import threading

from node_harness import Harness
import pytest

from rcdepth_ros.core.bags import bag_info, read_bag_messages, write_bag
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.data.synthetic import SyntheticConfig, SyntheticReader
from rcdepth_ros.errors import BagError
from rcdepth_ros.nodes.player import BagPlayer, message_class, publisher_qos


@pytest.fixture(scope='module')
def synthetic_bag(tmp_path_factory):
    reader = SyntheticReader(SyntheticConfig(num_drives=1, frames_per_drive=3, width=128, height=96))
    return write_bag(reader, tmp_path_factory.mktemp('bags') / 'drive').path


@pytest.fixture(scope='module')
def latched_bag(tmp_path_factory):
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import get_typestore, Stores
    store = get_typestore(Stores.ROS2_JAZZY)
    path = tmp_path_factory.mktemp('bags') / 'latched'
    never = QosTime(0, 0)
    latched = [Qos(QosHistory.KEEP_LAST, 1, QosReliability.RELIABLE, QosDurability.TRANSIENT_LOCAL, never, never,
                   QosLiveliness.AUTOMATIC, never, False)]
    String = store.types['std_msgs/msg/String']
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/latched', 'std_msgs/msg/String', typestore=store,
                                           serialization_format='cdr', offered_qos_profiles=latched)
        writer.write(connection, 1_000_000_000, store.serialize_cdr(String(data='hello'), 'std_msgs/msg/String'))
    return path


def _play_in_thread(player):
    box = {}
    thread = threading.Thread(target=lambda: box.setdefault('summary', player.play()))
    thread.start()
    return thread, box


def test_message_types_resolve_by_import_or_fail_clearly():
    from sensor_msgs.msg import Image
    assert message_class('sensor_msgs/msg/Image') is Image
    with pytest.raises(ImportError):
        message_class('tf2_msgs/msg/TFMessage')          # not installable from PyPI: the player skips it
    with pytest.raises(ImportError):
        message_class('sensor_msgs/Image')
    from rclpy.qos import DurabilityPolicy, ReliabilityPolicy
    latched = publisher_qos([{'reliability': 'reliable', 'durability': 'transient_local', 'depth': 1}])
    assert latched.durability == DurabilityPolicy.TRANSIENT_LOCAL and latched.depth == 1
    default = publisher_qos([])
    assert default.reliability == ReliabilityPolicy.RELIABLE and default.depth == 10


def test_plays_raw_messages_in_order_with_clock_and_skips_unimportable_types(ros_context, synthetic_bag):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo, Image, PointCloud2
    harness = Harness(ros_context, '/')
    try:
        images = harness.collect(Image, '/camera/image')
        infos = harness.collect(CameraInfo, '/camera/camera_info')
        clouds = harness.collect(PointCloud2, '/radar/points')
        clock = harness.collect(Clock, '/clock')
        player = BagPlayer(harness.node, synthetic_bag, rate=2.0, clock=True)
        assert set(player.skipped_topics) == {'/tf', '/tf_static'}
        assert 'tf2_msgs' in player.skipped_topics['/tf']
        assert player.wait_for_subscribers(['/camera/image', '/radar/points'], 10.0) == []
        thread, box = _play_in_thread(player)
        assert harness.spin_until(lambda: not thread.is_alive() and len(images) == 3 and len(clouds) == 3, 30)
        thread.join()
        summary = box['summary']
        assert summary.published['/camera/image'] == 3 and summary.skipped_messages == 4      # 3 /tf + 1 static
        assert summary.publish_errors == 0 and summary.loops == 1 and summary.oversized == {}
        assert player.size_limit == 64 * 2 ** 20                    # the shared-memory segment of the test profile
        assert summary.bag_s == pytest.approx(bag_info(synthetic_bag).duration_s)     # the whole bag was played
        expected = list(read_bag_messages(synthetic_bag, topics=['/camera/image']))
        assert [stamp_to_ns(m.header) for m in images] == [stamp_to_ns(m.msg.header) for m in expected]
        assert bytes(images[0].data) == bytes(expected[0].msg.data)       # the bag's bytes, unchanged
        assert len(infos) == 3
        assert harness.spin_until(lambda: clock and stamp_to_ns(clock[-1].clock) >= stamp_to_ns(images[-1].header))
    finally:
        harness.close()


def test_messages_larger_than_the_shared_memory_segment_are_warned_about_and_counted(ros_context, synthetic_bag,
                                                                                     capfd):
    from sensor_msgs.msg import Image
    harness = Harness(ros_context, '/')
    try:
        images = harness.collect(Image, '/camera/image')
        # a 1000-byte segment stands for the 64 MiB one: every 128x96 image is larger, every camera_info smaller
        player = BagPlayer(harness.node, synthetic_bag, rate=10.0, topics=['/camera/image', '/camera/camera_info'],
                           size_limit=1000)
        assert player.wait_for_subscribers(['/camera/image'], 10.0) == []
        summary = player.play()
        assert summary.oversized == {'/camera/image': 3} and summary.published['/camera/image'] == 3
        assert harness.spin_until(lambda: len(images) == 3, 10)     # still published: a reliable reader may get it
    finally:
        harness.close()
    log = capfd.readouterr().err
    assert log.count('larger than the 1000 bytes shared-memory segment') == 1 and '/camera/image' in log


def test_latched_topics_reach_late_subscribers_and_loop_replays(ros_context, latched_bag):
    from rcdepth_ros.nodes.qos import qos_from_string
    from std_msgs.msg import String
    harness = Harness(ros_context, '/')
    try:
        player = BagPlayer(harness.node, latched_bag)
        assert player.play().published == {'/latched': 1}
        late = harness.collect(String, '/latched', qos_from_string('transient_local'))
        assert harness.spin_until(lambda: late, 10) and late[0].data == 'hello'
        looping = BagPlayer(harness.node, latched_bag, loop=True)
        thread, box = _play_in_thread(looping)
        assert harness.spin_until(lambda: looping.loops >= 3, 10)
        looping.stop.set()
        thread.join(5)
        assert not thread.is_alive() and box['summary'].published['/latched'] >= 3
        with pytest.raises(BagError, match='/nope'):
            BagPlayer(harness.node, latched_bag, topics=['/nope'])
        with pytest.raises(BagError, match='rate'):
            BagPlayer(harness.node, latched_bag, rate=0)
    finally:
        harness.close()
