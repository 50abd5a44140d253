"""Evaluation metrics against values computed by hand on tiny depth maps."""

import json
import math

import numpy as np
import pytest

from rcdepth_ros.errors import MetricsError, RcdepthError
from rcdepth_ros.evaluation.metrics import (cap_key, compute_frame_metrics, METRIC_NAMES, MetricsAccumulator,
                                            MetricsResult)

GT = np.array([[10.0, 20.0], [0.0, 60.0]])
PRED = np.array([[12.0, 15.0], [5.0, 90.0]])


def test_frame_metrics_by_hand():
    frame = compute_frame_metrics(PRED, GT)
    assert frame.valid_pixels == {'50': 2, '70': 3, '80': 3}
    m50 = frame.caps['50']
    # Pixels (g, p): (10, 12), (20, 15); the g = 0 pixel is invalid, g = 60 is beyond 50 m.
    assert m50['mae'] == pytest.approx(3500.0)                          # (2 + 5) / 2 m
    assert m50['rmse'] == pytest.approx(math.sqrt(14.5) * 1000)          # sqrt((4 + 25) / 2) m
    assert m50['absrel'] == pytest.approx(0.225)                        # (0.2 + 0.25) / 2
    assert m50['sqrel'] == pytest.approx(0.825)                         # (4 / 10 + 25 / 20) / 2
    assert m50['rmselog'] == pytest.approx(math.sqrt((math.log(1.2) ** 2 + math.log(0.75) ** 2) / 2))
    assert (m50['delta1'], m50['delta2'], m50['delta3']) == (0.5, 1.0, 1.0)   # ratios 1.2 and 1.333
    assert m50['imae'] == pytest.approx(50 / 3)                          # |1000/12 - 100| = |1000/15 - 50|
    assert m50['irmse'] == pytest.approx(50 / 3)
    m70 = frame.caps['70']
    # The 60 m pixel joins; its prediction of 90 m is clipped to 70 m.
    assert m70['mae'] == pytest.approx(17 / 3 * 1000)
    assert m70['rmse'] == pytest.approx(math.sqrt(43) * 1000)
    assert m70['absrel'] == pytest.approx((0.2 + 0.25 + 10 / 60) / 3)
    assert m70['sqrel'] == pytest.approx((0.4 + 1.25 + 100 / 60) / 3)
    assert m70['delta1'] == pytest.approx(2 / 3)                         # 70 / 60 = 1.167 < 1.25
    assert m70['imae'] == pytest.approx((50 / 3 * 2 + (1000 / 60 - 1000 / 70)) / 3)
    m80 = frame.caps['80']
    assert m80['mae'] == pytest.approx(9000.0)                           # (2 + 5 + 20) / 3 m
    assert m80['delta1'] == pytest.approx(1 / 3)                         # 80 / 60 = 1.333
    assert m80['delta2'] == 1.0


def test_perfect_prediction():
    gt = np.array([[5.0, 30.0, 79.0]])
    values = compute_frame_metrics(gt.copy(), gt).caps['80']
    assert values == {'mae': 0.0, 'rmse': 0.0, 'absrel': 0.0, 'sqrel': 0.0, 'rmselog': 0.0, 'delta1': 1.0,
                      'delta2': 1.0, 'delta3': 1.0, 'imae': 0.0, 'irmse': 0.0}


def test_valid_range_and_clipping_bounds():
    gt = np.array([1e-3, 2e-3, 50.0, 49.9, np.nan, -1.0])
    pred = np.array([1.0, 0.0, 1.0, -7.0, 3.0, 3.0])
    frame = compute_frame_metrics(pred, gt, caps=[50])
    # Valid: 2e-3 (pred 0 -> 1e-3) and 49.9 (pred -7 -> 1e-3); 1e-3 and 50 are excluded (strict bounds).
    assert frame.valid_pixels == {'50': 2}
    assert frame.caps['50']['mae'] == pytest.approx(((2e-3 - 1e-3) + (49.9 - 1e-3)) / 2 * 1000)


def test_nonfinite_predictions_are_penalised_and_counted():
    gt = np.array([[10.0, 10.0, 10.0, 0.0]])
    pred = np.array([[np.nan, np.inf, -np.inf, np.nan]])
    frame = compute_frame_metrics(pred, gt, caps=[50])
    assert frame.nonfinite_pred == 3                                      # the NaN at invalid GT is not counted
    # NaN -> 1e-3 m, +inf -> 50 m, -inf -> 1e-3 m.
    assert frame.caps['50']['mae'] == pytest.approx((9.999 + 40.0 + 9.999) / 3 * 1000)
    assert frame.caps['50']['delta3'] == 0.0
    acc = MetricsAccumulator(caps=[50])
    acc.add(pred, gt)
    acc.add(gt, gt)
    result = acc.result()
    assert result.nonfinite_predictions == 3
    assert result.to_dict()['nonfinite_predictions'] == 3
    assert MetricsResult.from_json(result.to_json()).nonfinite_predictions == 3


def test_average_over_images_not_over_pixels():
    acc = MetricsAccumulator(keep_frames=True)
    acc.add(PRED, GT, frame_id='a')
    gt_b = np.full((4, 4), 10.0)
    pred_b = gt_b.copy()
    pred_b[0, 0] = 14.0
    acc.add(pred_b, gt_b, frame_id='b')
    result = acc.result()
    assert result.frames == 2
    assert result.caps['50']['mae'] == pytest.approx((3500.0 + 250.0) / 2)   # pooled would be 611 mm
    assert result.caps['50']['delta1'] == pytest.approx((0.5 + 15 / 16) / 2)
    assert [f.frame_id for f in result.frame_list] == ['a', 'b']


def test_image_without_valid_pixels_under_a_cap():
    acc = MetricsAccumulator()
    acc.add(np.array([[65.0]]), np.array([[60.0]]))      # nothing under 50 m
    acc.add(np.array([[11.0]]), np.array([[10.0]]))
    result = acc.result()
    assert result.frames == 2
    assert result.caps['50']['mae'] == pytest.approx(1000.0)                 # only the second image
    assert result.caps['70']['mae'] == pytest.approx((5000.0 + 1000.0) / 2)
    empty = MetricsAccumulator().result()
    assert empty.frames == 0 and empty.caps['80']['mae'] is None
    json.loads(empty.to_json())


def test_json_has_exactly_the_documented_keys_and_round_trips():
    acc = MetricsAccumulator(keep_frames=True)
    acc.add(PRED, GT, frame_id='000001')
    result = acc.result()
    data = json.loads(result.to_json())
    assert set(data) == {'frames', 'caps'} and data['frames'] == 1
    assert list(data['caps']) == ['50', '70', '80']
    for values in data['caps'].values():
        assert list(values) == list(METRIC_NAMES)
    back = MetricsResult.from_dict(data)
    assert back.to_dict() == result.to_dict()
    with_frames = json.loads(result.to_json(include_frames=True))
    assert with_frames['per_frame'][0]['frame_id'] == '000001'
    assert with_frames['per_frame'][0]['valid_pixels'] == {'50': 2, '70': 3, '80': 3}
    assert MetricsResult.from_dict(with_frames).frame_list[0].caps == result.frame_list[0].caps


def test_bad_inputs():
    with pytest.raises(MetricsError, match=r'prediction shape \(2, 3\) does not match ground truth shape \(3, 2\)'):
        compute_frame_metrics(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(MetricsError, match='frame 17'):
        MetricsAccumulator().add(np.zeros((2, 3)), np.zeros((2, 2)), frame_id=17)
    assert compute_frame_metrics(np.ones((1, 2, 3)), np.ones((2, 3, 1))).valid_pixels['80'] == 6
    with pytest.raises(MetricsError, match='caps must be finite'):
        MetricsAccumulator(caps=[])
    with pytest.raises(MetricsError, match='caps must be finite'):
        compute_frame_metrics(PRED, GT, caps=[0.0])
    with pytest.raises(MetricsError, match='distinct'):
        MetricsAccumulator(caps=[50, 50.0])
    with pytest.raises(MetricsError, match='numeric depth map'):
        compute_frame_metrics(np.array([['a']]), GT[:1, :1])
    with pytest.raises(MetricsError, match='not a metrics dict'):
        MetricsResult.from_dict({'frames': 1, 'caps': {'50': {'mae': 1.0}}})
    with pytest.raises(RcdepthError, match='invalid JSON'):
        MetricsResult.from_json('{frames')


def test_cap_keys():
    assert cap_key(50) == '50' and cap_key(80.0) == '80' and cap_key(62.5) == '62.5'
    frame = compute_frame_metrics(PRED, GT, caps=[62.5])
    assert list(frame.caps) == ['62.5']


def test_integer_depth_maps_in_metres_are_accepted():
    frame = compute_frame_metrics(np.array([[12, 15]], np.uint16), np.array([[10, 20]], np.int32), caps=[50])
    assert frame.caps['50']['mae'] == pytest.approx(3500.0)
