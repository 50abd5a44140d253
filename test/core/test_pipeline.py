"""The frame pipeline the node and eval-bag share: matching, caches, time jumps, radar gathering, outputs."""

import numpy as np
import pytest

from rcdepth_ros.core.geometry.extrinsics import StaticExtrinsics
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.inference.engine import InferenceEngine
from rcdepth_ros.core.messages.msgtypes import rosbags_message_types
from rcdepth_ros.core.runtime.caches import Sweep
from rcdepth_ros.core.runtime.pipeline import (FrameAssembler, FrameRequest, PipelineSettings, process_frame,
                                               published_depth, radar_in_camera)
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.errors import FrameError
from support.frame_messages import CAMERA_FRAME, FrameMessageFactory

T0 = 1_700_000_000 * 10 ** 9
PERIOD = 100_000_000


@pytest.fixture(scope='module')
def factory():
    return FrameMessageFactory(rosbags_message_types(), width=160, height=120)


@pytest.fixture
def engine(tiny_student):
    return InferenceEngine(tiny_student, device='cpu')


@pytest.fixture
def extrinsics(factory):
    return StaticExtrinsics(factory.extrinsics(), CAMERA_FRAME)


def _request(stamp, factory):
    return FrameRequest(stamp, factory.image(stamp), Sweep(0, stamp, factory.radar(stamp)), 0.0, 0.0)


def _assembler(settings=None, radars=('radar',)):
    requests, events = [], []
    assembler = FrameAssembler(settings or PipelineSettings(), radars, on_frame=requests.append,
                               on_event=lambda reason, text: events.append((reason, text)))
    return assembler, requests, events


def _feed(assembler, factory, stamp, camera_info=True, radar_offset=0):
    if camera_info:
        assembler.add_camera_info(factory.camera_info(stamp))
    assembler.radar_filters[0].signalMessage(factory.radar(stamp + radar_offset))
    assembler.image_filter.signalMessage(factory.image(stamp))


def test_one_request_per_matched_pair_with_its_camera_info_and_sweeps(factory):
    assembler, requests, events = _assembler()
    for i in range(5):
        _feed(assembler, factory, T0 + i * PERIOD, radar_offset=20_000_000)
    assert [r.stamp_ns for r in requests] == [T0 + i * PERIOD for i in range(5)]
    request = assembler.complete(requests[-1])
    assert request.camera_info[1].width == 160 and request.radar.stamp_ns == request.stamp_ns + 20_000_000
    assert [s.stamp_ns for s in request.sweeps] == [request.radar.stamp_ns]
    assert request.received <= request.matched
    stats = assembler.stats()
    assert stats['sync']['image'] == {'received': 5, 'matched': 5, 'dropped': 0, 'queued': 0}
    assert stats['counters']['matched'] == 5 and events == []


def test_frames_wait_for_the_first_camera_info(factory):
    assembler, requests, events = _assembler()
    _feed(assembler, factory, T0, camera_info=False)
    _feed(assembler, factory, T0 + PERIOD, camera_info=False)
    assert requests == [] and events[0][0] == 'no_camera_info' and f'{T0 / 1e9:.3f}' in events[0][1]
    assembler.add_camera_info(factory.camera_info(T0 + PERIOD + 5))     # arrives just after its image
    assert [r.stamp_ns for r in requests] == [T0 + PERIOD]
    assert assembler.complete(requests[0]).camera_info is not None     # the one after serves too
    assert assembler.stats()['counters']['no_camera_info'] == 1


def test_bad_camera_info_is_counted_and_not_cached(factory):
    assembler, requests, events = _assembler()
    bad = factory.camera_info(T0)
    bad.k = np.zeros(9)
    assert assembler.add_camera_info(bad) is None
    _feed(assembler, factory, T0, camera_info=False)
    assert events[0][0] == 'bad_camera_info' and 'uncalibrated' in events[0][1]
    assert requests == []
    request = assembler.complete(_request(T0, factory))
    with pytest.raises(FrameError) as info:
        process_frame(None, request, None)
    assert info.value.reason == 'no_camera_info'


def test_a_frame_whose_own_camera_info_is_refused_is_not_processed_with_another(factory, engine, extrinsics):
    assembler, requests, events = _assembler()
    _feed(assembler, factory, T0)
    assert process_frame(engine, assembler.complete(requests[0]), extrinsics).depth.shape == (120, 160)
    bad = factory.camera_info(T0 + PERIOD)
    bad.k = np.zeros(9)                                       # K = 0: an uncalibrated camera
    assembler.add_camera_info(bad)
    _feed(assembler, factory, T0 + PERIOD, camera_info=False)
    request = assembler.complete(requests[1], wait_s=5.0)    # its own one was seen (refused): no waiting
    assert request.camera_info is None and 'uncalibrated' in request.camera_info_refused
    with pytest.raises(FrameError) as info:
        process_frame(engine, request, extrinsics)
    assert info.value.reason == 'no_camera_info' and 'refused' in str(info.value)
    assert [reason for reason, _ in events] == ['bad_camera_info']
    assert assembler.stats()['counters']['bad_camera_info'] == 1
    # the next frame brings a good camera_info and is processed; an unstamped refused one belongs to no frame
    _feed(assembler, factory, T0 + 2 * PERIOD)
    assert process_frame(engine, assembler.complete(requests[2]), extrinsics).depth.shape == (120, 160)
    unstamped = factory.camera_info(0)
    unstamped.k = np.zeros(9)
    assembler.add_camera_info(unstamped)
    _feed(assembler, factory, T0 + 3 * PERIOD, camera_info=False)
    assert assembler.complete(requests[3]).camera_info is not None


def test_time_jumping_backwards_resets_the_synchroniser_and_caches(factory):
    assembler, requests, events = _assembler()
    for i in range(3):
        _feed(assembler, factory, T0 + i * PERIOD)
    assembler.radar_filters[0].signalMessage(factory.radar(T0 + 3 * PERIOD))     # queued, unmatched
    assert assembler.stats()['sync']['radar']['queued'] == 1
    restart = T0 - 10 * 10 ** 9                                                      # the bag started again
    _feed(assembler, factory, restart)
    assert [reason for reason, _ in events] == ['time_jump']
    assert 'backwards' in events[0][1]
    assert requests[-1].stamp_ns == restart
    request = assembler.complete(requests[-1])
    assert [s.stamp_ns for s in request.sweeps] == [restart]     # nothing from before the jump
    stats = assembler.stats()
    assert stats['counters']['time_jump'] == 1 and stats['sync']['radar']['queued'] == 0
    small_step_back = restart - 500_000_000                     # less than time_jump_s: just an older message
    assembler.radar_filters[0].signalMessage(factory.radar(small_step_back))
    assert assembler.stats()['counters']['time_jump'] == 1


def test_multi_radar_sweeps_are_accumulated_per_radar(factory):
    settings = PipelineSettings(radar_window_s=0.25, radar_max_sweeps=2)
    assembler, requests, _ = _assembler(settings, radars=('front', 'left'))
    for k in range(4):
        assembler.radar_filters[1].signalMessage(factory.radar(T0 - k * 70_000_000, frame_id='radar'))
    assembler.radar_filters[0].signalMessage(factory.radar(T0 - 150_000_000))
    _feed(assembler, factory, T0)
    request = assembler.complete(requests[0])
    assert [(s.radar, s.stamp_ns - T0) for s in request.sweeps] == [
        (0, -150_000_000), (0, 0), (1, -70_000_000), (1, 0)]
    assembler.set_radar_selection(window_s=0.0, max_sweeps=1)
    assert [(s.radar, s.stamp_ns - T0) for s in assembler.complete(request).sweeps] == [(0, 0), (1, 0)]


def test_process_frame_outputs_and_the_radar_the_model_saw(factory, engine, extrinsics):
    assembler, requests, _ = _assembler()
    _feed(assembler, factory, T0)
    result = process_frame(engine, assembler.complete(requests[0]), extrinsics)
    assert result.depth.shape == (120, 160) and result.depth.dtype == np.float32
    rows_seen = np.isfinite(result.depth).any(axis=1)
    assert not rows_seen[0] and rows_seen[-1]                  # crop='bottom': the top rows are not predicted
    assert np.nanmin(result.depth) > 0
    assert result.radar_points == factory.radar_points and result.issues == []
    assert result.radar_depth.shape == (64, 128)
    # The radar depth image is the returns projected with the model-resolution K: check one return.
    radar_cam = factory.radar_camera(T0)
    expected = sparse_depth_image(radar_cam.xyz, result.radar_K, 128, 64, 1.0, 100.0)
    assert np.allclose(result.radar_depth, expected, atol=1e-3)
    assert {'decode', 'radar', 'forward', 'total'} <= set(result.timings)
    # The same numbers as the engine called directly on the decoded inputs.
    direct = engine.infer(factory.rgb(T0), radar_cam, factory.intrinsics)
    assert np.array_equal(result.depth, published_depth(direct.depth), equal_nan=True)
    with_saliency = process_frame(engine, requests[0], extrinsics, saliency=True)
    assert with_saliency.saliency.shape == (120, 160)
    assert 0.0 <= with_saliency.saliency.min() and with_saliency.saliency.max() <= 1.0


def test_radar_is_moved_into_the_camera_frame(factory, extrinsics):
    radar, issues = radar_in_camera([Sweep(0, T0, factory.radar(T0))], extrinsics, CAMERA_FRAME, T0)
    truth = factory.radar_camera(T0)
    assert issues == [] and radar.frame_id == CAMERA_FRAME
    assert np.allclose(radar.xyz, truth.xyz, atol=1e-4)
    assert np.allclose(radar.rcs, truth.rcs) and np.allclose(radar.v_radial, truth.v_radial)


def test_bad_sweeps_are_skipped_and_named(factory, extrinsics):
    good = factory.radar(T0)
    nan_points = factory.radar_camera(T0)
    nan_points.xyz[:5] = np.nan
    nan_points.rcs[5:8] = np.inf
    empty = RadarPoints(np.zeros((0, 3)), frame_id=CAMERA_FRAME)
    types = factory.types
    missing_z = types.new('PointCloud2', header=good.header, height=1, width=0, fields=[], point_step=0,
                          row_step=0, data=b'', is_dense=True)
    sweeps = [Sweep(0, T0, factory.radar(T0, points=nan_points)), Sweep(0, T0, factory.radar(T0, points=empty)),
              Sweep(0, T0, factory.radar(T0, frame_id='sonar')), Sweep(0, T0, missing_z), Sweep(0, T0, good)]
    radar, issues = radar_in_camera(sweeps, extrinsics, CAMERA_FRAME, T0)
    reasons = [reason for reason, _ in issues]
    assert reasons == ['radar_nonfinite_points', 'radar_nonfinite_values', 'radar_empty', 'radar_unknown_frame',
                       'radar_format']
    assert '5 of 60' in issues[0][1] and "'sonar'" in issues[3][1]
    assert len(radar) == 2 * factory.radar_points - 5
    assert np.isfinite(radar.xyz).all() and np.isfinite(radar.rcs).all()


def test_frame_problems_raise_frame_error_with_their_counter(factory, engine, extrinsics):
    assembler, requests, _ = _assembler()
    assembler.add_camera_info(factory.camera_info(T0))
    assembler.radar_filters[0].signalMessage(factory.radar(T0))
    assembler.image_filter.signalMessage(factory.image(T0, encoding='32FC1'))
    assembler.radar_filters[0].signalMessage(factory.radar(T0 + PERIOD))
    big = FrameMessageFactory(factory.types, width=200, height=150)
    assembler.image_filter.signalMessage(big.image(T0 + PERIOD))
    reasons = []
    for request in requests:
        with pytest.raises(FrameError) as info:
            process_frame(engine, assembler.complete(request), extrinsics)
        reasons.append(info.value.reason)
        assert 'image at' in str(info.value)
    assert reasons == ['bad_image', 'image_size_mismatch']
    # camera_info following the new size makes the new size work
    assembler.add_camera_info(big.camera_info(T0 + PERIOD))
    assert process_frame(engine, assembler.complete(requests[1]), extrinsics).depth.shape == (150, 200)


def test_published_depth_marks_invalid_as_nan():
    depth = np.array([[1.0, 0.0, -1.0, np.inf, np.nan]], dtype=np.float64)
    out = published_depth(depth)
    assert out.dtype == np.float32
    assert out[0, 0] == 1.0 and np.isnan(out[0, 1:]).all()
    with pytest.raises(FrameError, match='queue_size'):
        PipelineSettings(queue_size=0)


def test_complete_waits_for_the_camera_info_of_the_image_once_they_share_stamps(factory):
    import threading
    assembler, requests, _ = _assembler()
    _feed(assembler, factory, T0)
    assert assembler.complete(requests[0], wait_s=1.0).camera_info[0].header is not None   # exact stamp seen
    big = FrameMessageFactory(factory.types, width=200, height=150)
    assembler.radar_filters[0].signalMessage(factory.radar(T0 + PERIOD))
    assembler.image_filter.signalMessage(big.image(T0 + PERIOD))
    timer = threading.Timer(0.1, assembler.add_camera_info, [big.camera_info(T0 + PERIOD)])
    timer.start()
    request = assembler.complete(requests[1], wait_s=2.0)      # the new camera_info comes 0.1 s later
    timer.join()
    assert request.camera_info[1].width == 200
    # without waiting, the previous camera_info would have served
    assembler.radar_filters[0].signalMessage(factory.radar(T0 + 2 * PERIOD))
    assembler.image_filter.signalMessage(factory.image(T0 + 2 * PERIOD))
    assert assembler.complete(requests[2], wait_s=0.0).camera_info[1].width == 200


def test_unstamped_camera_info_serves_and_never_looks_like_a_time_jump(factory):
    assembler, requests, events = _assembler()
    _feed(assembler, factory, T0, camera_info=False)
    assembler.add_camera_info(factory.camera_info(0))           # a driver that never stamps camera_info
    _feed(assembler, factory, T0 + PERIOD, camera_info=False)
    assert events == [] and [r.stamp_ns for r in requests] == [T0, T0 + PERIOD]
    assert assembler.complete(requests[1]).camera_info is not None
