"""rcdepth_node keeps running through bad input: each problem warned about, counted in diagnostics, node goes on."""

from node_harness import PERIOD, Rig, T0
import numpy as np

from rcdepth_ros.core.messages.msgtypes import stamp_to_ns
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.nodes.diagnostics import status_values
from support.frame_messages import FrameMessageFactory


def _stamp(i):
    return T0 + i * PERIOD


def test_bad_input_is_counted_and_the_node_goes_on(harness, tiny_checkpoint, messages):
    rig = Rig(harness, tiny_checkpoint)
    node = rig.node

    def published():
        return [stamp_to_ns(m.header) for m in rig.depth]

    def problems():
        return node.report()['drops']

    # the reports of the drops below are read at the end: wait until /diagnostics reaches the test's subscription
    # (discovery can take longer than the whole test on a quiet machine, and reports sent before it are lost)
    assert harness.spin_until(lambda: len(rig.diagnostics) > 0, 30)

    # 1. images before any camera_info: the newest waits, older ones are dropped and counted
    rig.send(messages, _stamp(0), info=False)
    rig.send(messages, _stamp(1), info=False)
    assert harness.spin_until(lambda: problems()['no_camera_info'] == 1)
    assert published() == []
    rig.info_pub.publish(messages.camera_info(_stamp(1)))
    assert rig.wait_outputs(1) and published() == [_stamp(1)]

    # 2. an encoding that is not a colour image
    rig.send(messages, _stamp(2), image=messages.image(_stamp(2), encoding='32FC1'))
    assert harness.spin_until(lambda: problems()['bad_image'] == 1)
    # 3. the image size changes mid-stream while camera_info still describes the old size ...
    big = FrameMessageFactory(messages.types, width=200, height=150)
    rig.send(messages, _stamp(3), image=big.image(_stamp(3)))
    assert harness.spin_until(lambda: problems()['image_size_mismatch'] == 1)
    # ... and works again once camera_info follows
    rig.info_pub.publish(big.camera_info(_stamp(4)))
    rig.radar_pub.publish(messages.radar(_stamp(4)))
    rig.image_pub.publish(big.image(_stamp(4)))
    assert rig.wait_outputs(2)
    assert (rig.depth[-1].width, rig.depth[-1].height) == (200, 150)
    rig.send(messages, _stamp(5))
    assert rig.wait_outputs(3) and rig.depth[-1].width == 160

    # 4. radar in a frame nobody knows, 5. an empty sweep, 6. returns with NaN coordinates: depth still comes
    rig.send(messages, _stamp(6), radar=messages.radar(_stamp(6), frame_id='sonar'))
    assert rig.wait_outputs(4) and problems()['radar_unknown_frame'] == 1
    empty = RadarPoints(np.zeros((0, 3)), frame_id='camera_optical')
    rig.send(messages, _stamp(7), radar=messages.radar(_stamp(7), points=empty))
    assert rig.wait_outputs(5) and problems()['radar_empty'] == 1
    nan_radar = messages.radar_camera(_stamp(8))
    nan_radar.xyz[::2] = np.nan
    rig.send(messages, _stamp(8), radar=messages.radar(_stamp(8), points=nan_radar))
    assert rig.wait_outputs(6) and problems()['radar_nonfinite_points'] == 1

    # 7. a camera_info of an uncalibrated camera is refused, and so is its frame: an older K must not serve it
    bad_info = messages.camera_info(_stamp(9))
    bad_info.k = [0.0] * 9
    rig.info_pub.publish(bad_info)
    rig.send(messages, _stamp(9), info=False)
    assert harness.spin_until(lambda: problems()['no_camera_info'] == 2)
    assert problems()['bad_camera_info'] == 1 and _stamp(9) not in published()
    rig.send(messages, _stamp(10))                            # the next frame, with a good camera_info, works
    assert rig.wait_outputs(7) and published()[-1] == _stamp(10)

    # 8. time jumps backwards (the bag restarted): synchroniser and caches reset, frames flow again
    restart = T0 - 60 * 10 ** 9
    for i in range(2):
        rig.send(messages, restart + i * PERIOD)
        assert rig.wait_outputs(8 + i)
    assert problems()['time_jump'] == 1
    assert published()[-2:] == [restart, restart + PERIOD]

    # the next diagnostics report after the drops is a warning naming them (waited for here: an error counted in
    # the same report interval, as in step 9, would take precedence)
    def warned():
        return any(a.status[0].level == b'\x01' and 'dropped' in a.status[0].message for a in rig.diagnostics)
    assert harness.spin_until(warned, 10)

    # 9. a publish that raises (as a RELIABLE publish can when a subscriber falls behind) is caught and counted
    assert node.report()['errors'] == {'inference_error': 0, 'publish_error': 0}
    assert not node._send('depth/image', lambda: 'not an Image message')
    assert node.report()['errors'] == {'inference_error': 0, 'publish_error': 1}

    # The node is alive, diagnostics name every kind, and the level says something was dropped.
    assert node._worker.is_alive()
    assert harness.spin_until(lambda: rig.diagnostics and
                              status_values(rig.diagnostics[-1]).get('drops.time_jump') == '1', 5)
    values = status_values(rig.diagnostics[-1])
    for reason in ('bad_image', 'image_size_mismatch', 'radar_unknown_frame', 'radar_empty',
                   'radar_nonfinite_points', 'bad_camera_info'):
        assert values[f'drops.{reason}'] == '1', reason
    assert values['drops.no_camera_info'] == '2'             # before the first camera_info, and frame 9
    assert warned()
