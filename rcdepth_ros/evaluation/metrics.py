"""
The evaluation protocol of method.md section 4: depth metrics per image, then averaged over images.

For each cap (50, 70, 80 m by default) a pixel is evaluated where the ground truth is valid, ``1e-3 < g < cap``
(NaN ground truth is invalid); predictions are clipped to ``[1e-3, cap]``. Per image: MAE and RMSE in mm,
AbsRel ``|p - g| / g``, SqRel ``(p - g)^2 / g`` (metres), RMSElog ``sqrt(mean (ln p - ln g)^2)``, delta_k the
fraction with ``max(p / g, g / p) < 1.25^k`` (k = 1, 2, 3), iMAE and iRMSE of ``1/p - 1/g`` in 1/km. The
result of a data set is the plain mean of the per-image values; an image with no valid pixel under a cap does
not take part in that cap's mean (its mean would be undefined), but it still counts in ``frames``.

Non-finite predictions. A network gives a dense map, so a NaN where the ground truth is valid is a failure, not
a missing measurement: dropping the pixel would improve the score by hiding it. It is evaluated as the worst
possible prediction on the near side, 0 m, which the clip turns into 1e-3 m (it fails every delta and dominates
iMAE); +inf clips to the cap and -inf to 1e-3 m like any other value. Every such pixel is counted: per frame
(``nonfinite_pred``) and in total (``MetricsResult.nonfinite_predictions``, written to the JSON as
``"nonfinite_predictions"`` only when it is not zero, so the normal file has exactly the keys
``{"frames": N, "caps": {"50": {...}, "70": {...}, "80": {...}}}``).
"""

import dataclasses
import json
import math
import typing

import numpy as np

from rcdepth_ros.errors import MetricsError

DEFAULT_CAPS = (50.0, 70.0, 80.0)
MIN_DEPTH = 1e-3
METRIC_NAMES = ('mae', 'rmse', 'absrel', 'sqrel', 'rmselog', 'delta1', 'delta2', 'delta3', 'imae', 'irmse')


def cap_key(cap):
    """Return the JSON key of a cap: ``'50'`` for 50.0, ``'62.5'`` for 62.5."""
    cap = float(cap)
    return str(int(cap)) if cap.is_integer() else repr(cap)


def _check_caps(caps):
    caps = tuple(float(c) for c in caps)
    if not caps or any(not (math.isfinite(c) and c > MIN_DEPTH) for c in caps):
        raise MetricsError(f'metrics: caps must be finite and above {MIN_DEPTH} m, got {caps}')
    if len({cap_key(c) for c in caps}) != len(caps):
        raise MetricsError(f'metrics: caps must be distinct, got {caps}')
    return caps


def _as_depth(values, name):
    arr = np.asarray(values)
    if arr.dtype.kind not in 'fiu':
        raise MetricsError(f'metrics: {name} must be a numeric depth map, got dtype {arr.dtype}')
    return np.squeeze(arr).astype(np.float64, copy=False)


@dataclasses.dataclass
class FrameMetrics:
    """
    Metrics of one image.

    ``caps[key]`` maps metric name -> value, or is None when no pixel is valid under that cap;
    ``valid_pixels[key]`` counts the evaluated pixels; ``nonfinite_pred`` counts valid-GT pixels (under the
    largest cap) whose prediction was NaN or inf.
    """

    caps: typing.Dict[str, typing.Optional[typing.Dict[str, float]]]
    valid_pixels: typing.Dict[str, int]
    nonfinite_pred: int = 0
    frame_id: typing.Optional[str] = None

    def to_dict(self):
        """Return a JSON-ready dict."""
        return {'frame_id': self.frame_id, 'caps': self.caps, 'valid_pixels': self.valid_pixels,
                'nonfinite_pred': self.nonfinite_pred}


def compute_frame_metrics(pred, gt, caps=DEFAULT_CAPS, frame_id=None):
    """
    Return FrameMetrics of the predicted depth ``pred`` against ground truth ``gt`` (metres, same shape).

    Singleton dimensions are ignored ((1, H, W) against (H, W) is fine); other shape mismatches raise
    MetricsError naming both shapes.
    """
    caps = _check_caps(caps)
    pred = _as_depth(pred, 'prediction')
    gt = _as_depth(gt, 'ground truth')
    if pred.shape != gt.shape:
        raise MetricsError(f'metrics{"" if frame_id is None else f" (frame {frame_id})"}: prediction shape '
                           f'{np.shape(pred)} does not match ground truth shape {np.shape(gt)}')
    with np.errstate(invalid='ignore'):
        valid_any = (gt > MIN_DEPTH) & (gt < max(caps))
    nonfinite = ~np.isfinite(pred)
    nonfinite_pred = int(np.count_nonzero(nonfinite & valid_any))
    # Documented above: NaN is the worst near-side prediction (0 m -> 1e-3 m after the clip); +-inf clip.
    pred = np.where(np.isnan(pred), 0.0, pred)
    out, counts = {}, {}
    for cap in caps:
        key = cap_key(cap)
        with np.errstate(invalid='ignore'):
            valid = (gt > MIN_DEPTH) & (gt < cap)
        counts[key] = int(np.count_nonzero(valid))
        out[key] = _metrics(np.clip(pred[valid], MIN_DEPTH, cap), gt[valid]) if counts[key] else None
    return FrameMetrics(out, counts, nonfinite_pred, None if frame_id is None else str(frame_id))


def _metrics(p, g):
    diff = p - g
    sq = diff * diff
    ratio = np.maximum(p / g, g / p)
    inv = 1000.0 / p - 1000.0 / g          # 1/m -> 1/km
    log_diff = np.log(p) - np.log(g)
    return {
        'mae': float(np.mean(np.abs(diff)) * 1000.0),
        'rmse': float(np.sqrt(np.mean(sq)) * 1000.0),
        'absrel': float(np.mean(np.abs(diff) / g)),
        'sqrel': float(np.mean(sq / g)),
        'rmselog': float(np.sqrt(np.mean(log_diff * log_diff))),
        'delta1': float(np.mean(ratio < 1.25)),
        'delta2': float(np.mean(ratio < 1.25 ** 2)),
        'delta3': float(np.mean(ratio < 1.25 ** 3)),
        'imae': float(np.mean(np.abs(inv))),
        'irmse': float(np.sqrt(np.mean(inv * inv))),
    }


@dataclasses.dataclass
class MetricsResult:
    """
    Metrics of a data set: ``caps[key][metric]`` is the mean over images.

    A value is None when no image had a valid pixel under that cap.
    """

    frames: int
    caps: typing.Dict[str, typing.Dict[str, typing.Optional[float]]]
    frame_list: typing.Optional[typing.List[FrameMetrics]] = None
    nonfinite_predictions: int = 0

    def to_dict(self, include_frames=False):
        """
        Return ``{"frames": N, "caps": {"50": {"mae": ..., ...}, ...}}``.

        ``"nonfinite_predictions"`` is added only when some prediction was NaN/inf at a valid pixel; ``"per_frame"``
        only with ``include_frames`` (and when the accumulator kept them).
        """
        out = {'frames': self.frames, 'caps': {k: dict(v) for k, v in self.caps.items()}}
        if self.nonfinite_predictions:
            out['nonfinite_predictions'] = self.nonfinite_predictions
        if include_frames and self.frame_list is not None:
            out['per_frame'] = [f.to_dict() for f in self.frame_list]
        return out

    def to_json(self, include_frames=False, indent=2):
        """Return the JSON text of ``to_dict``."""
        return json.dumps(self.to_dict(include_frames), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, data):
        """Return a result read back from ``to_dict`` output; MetricsError naming what is missing or wrong."""
        try:
            frames = int(data['frames'])
            caps = {str(k): {name: (None if v[name] is None else float(v[name])) for name in METRIC_NAMES}
                    for k, v in data['caps'].items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise MetricsError(f'metrics: not a metrics dict ({type(exc).__name__}: {exc}); expected '
                               f'{{"frames": N, "caps": {{"50": {{{", ".join(METRIC_NAMES)}}}, ...}}}}') from None
        frame_list = None
        if 'per_frame' in data:
            frame_list = [FrameMetrics(f['caps'], f['valid_pixels'], int(f.get('nonfinite_pred', 0)),
                                       f.get('frame_id')) for f in data['per_frame']]
        return cls(frames, caps, frame_list, int(data.get('nonfinite_predictions', 0)))

    @classmethod
    def from_json(cls, text):
        """Return a result from JSON text."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise MetricsError(f'metrics: invalid JSON: {exc}') from None
        return cls.from_dict(data)


class MetricsAccumulator:
    """
    Accumulate per-image metrics and average them: ``add(pred, gt, frame_id=None)`` per image, then ``result()``.

    ``keep_frames=True`` keeps every image's metrics for the per-frame list.
    """

    def __init__(self, caps=DEFAULT_CAPS, keep_frames=False):
        """Start empty for ``caps`` (metres)."""
        self.caps = _check_caps(caps)
        self.keep_frames = keep_frames
        self.frames = 0
        self.nonfinite_predictions = 0
        self._sums = {cap_key(c): dict.fromkeys(METRIC_NAMES, 0.0) for c in self.caps}
        self._counts = dict.fromkeys(self._sums, 0)
        self._frame_list = [] if keep_frames else None

    def add(self, pred, gt, frame_id=None):
        """Evaluate one image and add it; return its FrameMetrics."""
        frame = compute_frame_metrics(pred, gt, self.caps, frame_id)
        self.add_frame(frame)
        return frame

    def add_frame(self, frame):
        """Add an already computed FrameMetrics (e.g. from another worker)."""
        missing = set(self._sums) - set(frame.caps)
        if missing:
            raise MetricsError(f'metrics: frame {frame.frame_id} lacks caps {sorted(missing)}')
        self.frames += 1
        self.nonfinite_predictions += frame.nonfinite_pred
        for key, values in frame.caps.items():
            if key not in self._sums or values is None:
                continue
            self._counts[key] += 1
            for name in METRIC_NAMES:
                self._sums[key][name] += values[name]
        if self._frame_list is not None:
            self._frame_list.append(frame)

    def result(self):
        """Return the MetricsResult: per-cap means over the images that had valid pixels under that cap."""
        caps = {}
        for key, sums in self._sums.items():
            count = self._counts[key]
            caps[key] = {name: (sums[name] / count if count else None) for name in METRIC_NAMES}
        frame_list = list(self._frame_list) if self._frame_list is not None else None
        return MetricsResult(self.frames, caps, frame_list, self.nonfinite_predictions)
