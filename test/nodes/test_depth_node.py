"""rcdepth_node in process over real rclpy transport: outputs, one output per matched frame, keep-latest, QoS."""

from node_harness import GatedEngine, node_parameters, PERIOD, Rig, T0
import numpy as np
import pytest

from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.messages.images import image_to_numpy
from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.nodes.depth_node import DepthNode
from rcdepth_ros.nodes.diagnostics import status_values
from rcdepth_ros.nodes.runtime import bring_up


def _stamps(msgs):
    return [stamp_to_ns(m.header) for m in msgs]


def test_one_output_per_matched_frame_with_the_input_header(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint)
    stamps = [T0 + i * PERIOD for i in range(6)]
    for count, stamp in enumerate(stamps, start=1):
        rig.send(messages, stamp)
        assert rig.wait_outputs(count), f'no depth for frame {count}'
    harness.spin_for(0.3)
    assert _stamps(rig.depth) == stamps                         # exactly one, in order, none twice
    assert _stamps(rig.depth_info) == stamps
    for msg in rig.depth:
        assert msg.encoding == '32FC1' and (msg.height, msg.width) == (120, 160) and msg.step == 160 * 4
        assert msg.header.frame_id == 'camera_optical' and not msg.is_bigendian
        depth = image_to_numpy(msg)
        assert np.isnan(depth[0]).all() and np.isfinite(depth[-1]).all()   # cropped rows NaN (REP 118)
        assert np.nanmin(depth) >= 0.5 and np.nanmax(depth) <= 100.0
    info = rig.depth_info[-1]
    assert np.allclose(np.asarray(info.k).reshape(3, 3), messages.intrinsics.K)
    assert info.header.frame_id == 'camera_optical'
    # radar/depth_image: the returns moved with the parameter extrinsics and projected at the model's size
    radar_msg, radar_info = rig.radar_depth[-1], rig.radar_info[-1]
    assert (radar_msg.height, radar_msg.width, radar_msg.encoding) == (64, 128, '32FC1')
    K_model = np.asarray(radar_info.k).reshape(3, 3)
    truth = messages.radar_camera(stamps[-1])
    expected = sparse_depth_image(truth.xyz, K_model, 128, 64, 1.0, 100.0)
    got = np.nan_to_num(image_to_numpy(radar_msg))
    assert (expected > 0).sum() > 5 and np.allclose(got, expected, atol=1e-3)
    report = rig.node.report()
    assert report['frames']['published'] == 6 and report['drops']['keep_latest'] == 0
    assert report['drops']['sync.image'] == 0 and report['errors']['inference_error'] == 0
    assert harness.spin_until(lambda: rig.diagnostics and 'frames.published' in status_values(rig.diagnostics[-1]))
    values = status_values(rig.diagnostics[-1])
    assert values['device'] == 'cpu' and values['architecture'] == 'student' and values['input_size'] == '64x128'
    assert {'rates_hz.image', 'rates_hz.depth', 'latency_ms.processing.p50', 'latency_ms.end_to_end.p95',
            'drops.keep_latest', 'drops.radar_unknown_frame', 'errors.publish_error'} <= set(values)


def test_saliency_and_debug_colour_only_while_subscribed(harness, tiny_checkpoint, messages):
    from sensor_msgs.msg import Image
    rig = Rig(harness, tiny_checkpoint, **{'debug.depth_color': True})
    rig.send(messages, T0)
    assert rig.wait_outputs(1)
    assert rig.node.report()['frames']['published'] == 1
    saliency = harness.collect(Image, 'saliency/image')
    color = harness.collect(Image, f'{rig.node.get_fully_qualified_name()}/debug/depth_color')
    outputs = rig.node._outputs
    assert harness.spin_until(lambda: outputs['saliency/image'].get_subscription_count() >= 1 and
                              outputs['~/debug/depth_color'].get_subscription_count() >= 1)
    harness.spin_for(0.2)
    assert saliency == [] and color == []                    # nothing was computed for the first frame
    rig.send(messages, T0 + PERIOD)
    assert rig.wait_outputs(2) and harness.spin_until(lambda: saliency and color)
    sal = image_to_numpy(saliency[0])
    assert saliency[0].encoding == '32FC1' and sal.shape == (120, 160)
    assert 0.0 <= sal.min() and sal.max() <= 1.0 and sal.max() > 0
    assert stamp_to_ns(saliency[0].header) == T0 + PERIOD
    assert color[0].encoding == 'bgr8' and (color[0].height, color[0].width) == (120, 160)
    from rclpy.parameter import Parameter
    assert rig.node.set_parameters_atomically([Parameter('saliency.enabled', value=False)]).successful
    rig.send(messages, T0 + 2 * PERIOD)
    assert rig.wait_outputs(3)
    harness.spin_for(0.3)
    assert len(saliency) == 1                                # disabled by parameter: no more saliency


@pytest.mark.parametrize('overlap', [True, False])
def test_uncertainty_only_while_subscribed_nan_where_depth_is(harness, tiny_checkpoint, messages, overlap):
    from sensor_msgs.msg import Image
    rig = Rig(harness, tiny_checkpoint, **{'pipeline.overlap': overlap})
    rig.send(messages, T0)
    assert rig.wait_outputs(1)
    uncertainty = harness.collect(Image, 'depth/uncertainty')
    assert harness.spin_until(lambda: rig.node._outputs['depth/uncertainty'].get_subscription_count() >= 1)
    harness.spin_for(0.2)
    assert uncertainty == []                                 # nobody listened during the first frame
    rig.send(messages, T0 + PERIOD)
    assert rig.wait_outputs(2) and harness.spin_until(lambda: uncertainty)
    msg = uncertainty[0]
    assert msg.encoding == '32FC1' and (msg.height, msg.width) == (120, 160) and msg.header == rig.depth[1].header
    spread, depth = image_to_numpy(msg), image_to_numpy(rig.depth[1])
    np.testing.assert_array_equal(np.isnan(spread), np.isnan(depth))
    assert np.nanmin(spread) > 0 and np.nanmax(spread) < 100.0
    report = rig.node.report()
    assert report['engine']['backend'] == 'torch' and report['engine']['nonfinite_frames'] == 0
    # the node's own count of matched subscriptions per output (the demo waits on it before playing)
    assert report['subscribers']['depth/image'] >= 1 and report['subscribers']['depth/uncertainty'] >= 1
    assert report['subscribers']['~/debug/depth_color'] == 0
    assert report['engine']['frames'] == 2 and report['precision'] == 'fp32'


def test_keep_latest_drops_a_burst_but_never_the_newest(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint, **{'qos.input_depth': 100})
    rig.send(messages, T0)
    assert rig.wait_outputs(1)                               # warm-up
    # The model is held at the burst's first frame until every frame of the burst has been matched: the worker
    # is busy while they arrive whatever the machine's load, so keep-latest must drop all but the newest.
    gated = rig.node._engine = GatedEngine(rig.node._engine)
    matched, assembler = [], rig.node._assembler
    hand_over = assembler.on_frame
    assembler.on_frame = lambda request: (matched.append(request.stamp_ns), hand_over(request))
    burst = [T0 + i * PERIOD for i in range(1, 31)]
    for stamp in burst:
        rig.send(messages, stamp)
    assert harness.spin_until(lambda: burst[-1] in matched, 60)
    assert harness.spin_until(gated.entered.is_set, 30)
    gated.release()
    assert harness.spin_until(lambda: rig.depth and _stamps(rig.depth)[-1] == burst[-1], 60)
    harness.spin_for(0.5)
    report = rig.node.report()
    published = _stamps(rig.depth)[1:]
    assert published == sorted(set(published))              # in order, no repeats
    # Transport and synchroniser queues may lose some of a burst; every matched frame is published or counted.
    assert report['frames']['matched'] >= 2
    assert report['frames']['published'] + report['drops']['keep_latest'] == report['frames']['matched']
    assert report['drops']['keep_latest'] > 0
    assert len(published) == report['frames']['published'] - 1


def test_compressed_input_and_best_effort_subscription(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint, compressed=True, input_qos='sensor_data',
              **{'qos.input': 'sensor_data'})
    for i in range(3):
        stamp = T0 + i * PERIOD
        rig.send(messages, stamp, image=messages.compressed_image(stamp))
        assert rig.wait_outputs(i + 1)
    assert _stamps(rig.depth) == [T0 + i * PERIOD for i in range(3)]


def test_reliable_subscriber_does_not_hear_a_best_effort_publisher(harness, tiny_checkpoint, messages):
    # ros2.md: a RELIABLE subscription never receives from a BEST_EFFORT publisher; the node's default
    # (sensor_data, best effort) is what makes it work with camera drivers.
    from rcdepth_ros.nodes.qos import qos_from_string
    from sensor_msgs.msg import Image
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(tiny_checkpoint)))   # qos.input reliable
    assert bring_up(node)
    publisher = harness.publisher(Image, 'image', qos_from_string('sensor_data'))
    harness.spin_for(1.0)
    assert publisher.get_subscription_count() == 0


@pytest.mark.parametrize('name, value, fragment', [
    ('slop', 10.0, 'slop'), ('queue_size', 0, 'queue_size'), ('qos.input', 'fastest', 'qos.input'),
    ('debug.color_min', 500.0, 'color_max'), ('radar_topics', [''], 'radar'),
    ('image_transport', 'theora', 'image_transport')])
def test_parameter_sets_out_of_range_or_invalid_are_rejected(harness, tiny_checkpoint, name, value, fragment):
    from rclpy.parameter import Parameter
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(tiny_checkpoint)))
    before = node.get_parameter(name).value
    result = node.set_parameters([Parameter(name, value=value)])[0]
    assert not result.successful
    assert fragment in result.reason or fragment.replace('_', ' ') in result.reason.lower() or \
        'not within' in result.reason or 'read-only' in result.reason
    assert node.get_parameter(name).value == before


def test_model_parameters_are_set_while_unconfigured_and_refused_once_configured(harness, tiny_checkpoint,
                                                                                 tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(tmp_path / 'missing.safetensors')))
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE           # unconfigured, fixable
    assert node.set_parameters([Parameter('model_path', value=str(tiny_checkpoint))])[0].successful
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    for name, value in (('model_path', ''), ('device', 'cuda'), ('num_threads', 1)):
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and name in result.reason and 'unconfigured' in result.reason
    assert node.get_parameter('model_path').value == str(tiny_checkpoint)
    assert node.trigger_cleanup() == TransitionCallbackReturn.SUCCESS
    assert node.set_parameters([Parameter('num_threads', value=1)])[0].successful


def test_the_bundled_model_is_named_synthetic_only_when_the_node_loads_it(harness, capfd):
    from rclpy.lifecycle import TransitionCallbackReturn
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters('')))          # empty: the bundled demo model
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    log = capfd.readouterr().err
    assert 'model_path is empty: the bundled demo model' in log and 'trained on synthetic scenes only' in log


def test_live_parameters_apply_at_once(harness, tiny_checkpoint):
    from rclpy.parameter import Parameter
    node = harness.add(DepthNode(namespace=harness.namespace, context=harness.context,
                                 parameter_overrides=node_parameters(tiny_checkpoint)))
    assert bring_up(node)
    result = node.set_parameters_atomically([Parameter('radar.window', value=0.4),
                                             Parameter('radar.max_sweeps', value=3),
                                             Parameter('radar.fields.rcs', value='none'),
                                             Parameter('warn_throttle', value=2.5)])
    assert result.successful
    assert node._assembler.radar_cache.window_s == 0.4 and node._assembler.radar_cache.max_sweeps == 3
    assert node._field_map.rcs == '' and node._throttle.period_s == 2.5
