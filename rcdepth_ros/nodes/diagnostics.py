"""
``/diagnostics`` for the nodes: a nested report dict flattened into one DiagnosticStatus of key / value pairs.

The level: ERROR when inference failed since the last report, WARN when frames were dropped for a problem with the
input (bad image, no camera_info, unknown radar frame, ...) since the last report or when images come in but no
depth goes out (naming what was counted since the last depth), OK otherwise. The message says why. Diagnostics
aggregators and ``rqt_robot_monitor`` read it.
"""

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcdepth_ros.ros_env import describe_bytes

OK, WARN, ERROR = DiagnosticStatus.OK, DiagnosticStatus.WARN, DiagnosticStatus.ERROR


def flatten(report, prefix=''):
    """Return ``[(dotted key, text)]`` of a nested dict (floats with 3 decimals, None as 'n/a')."""
    items = []
    for key, value in report.items():
        name = f'{prefix}{key}'
        if isinstance(value, dict):
            items.extend(flatten(value, name + '.'))
        elif value is None:
            items.append((name, 'n/a'))
        elif isinstance(value, float):
            items.append((name, f'{value:.3f}' if math.isfinite(value) else str(value)))
        else:
            items.append((name, str(value)))
    return items


class LevelTracker:
    """
    Decide the level from counters that grew since the previous report, and say why nothing comes out.

    When images arrive but no depth goes out, the message names what was counted since the last depth (a bad image,
    no camera_info, frames dropped by the synchroniser, ...), else which stage the frames stopped at (no radar
    match, the model still busy). When no image arrives while the image topic has publishers, it names what drops
    images without a trace: a QoS mismatch, and messages larger than the DDS shared-memory segment.
    """

    def __init__(self):
        """Start with nothing seen."""
        self._previous = {}
        self._at_last_output = {}

    def level(self, problems, errors, input_rate, output_rate, frames=None, drops=None, image_input=None):
        """
        Return (level, message).

        ``problems`` and ``errors`` map counter names to totals; a total that grew since the last call counts.
        ``frames``: the report's frame totals (images, matched, processed, published); ``drops``: every drop
        counter (synchroniser, keep-latest too), named when no depth comes out; ``image_input``: (topic name,
        number of publishers on it, shared-memory segment bytes or None).
        """
        grown_errors = self._grown('e.', errors)
        grown_problems = self._grown('p.', problems)
        totals = dict(drops or {}, **problems)
        totals.update({f'frames.{k}': v for k, v in (frames or {}).items()})
        if output_rate > 0 or not self._at_last_output:
            self._at_last_output = dict(totals) if output_rate > 0 else dict.fromkeys(totals, 0)
        if grown_errors:
            return ERROR, 'inference failed: ' + ', '.join(grown_errors)
        if grown_problems:
            return WARN, 'frames or sweeps dropped: ' + ', '.join(grown_problems)
        if input_rate > 0 and output_rate == 0:
            return WARN, 'images arrive but no depth is published: ' + self._why_no_output(totals)
        if input_rate == 0:
            return OK, waiting_message(image_input)
        return OK, f'running at {output_rate:.1f} Hz'

    def _why_no_output(self, totals):
        since = {name: total - self._at_last_output.get(name, 0) for name, total in totals.items()}
        counted = sorted(((n, c) for n, c in since.items() if not n.startswith('frames.') and c > 0),
                         key=lambda item: -item[1])
        if counted:
            return 'since the last depth, ' + ', '.join(f'{name} {count}' for name, count in counted)
        images, matched = since.get('frames.images', 0), since.get('frames.matched', 0)
        if images > 0 and matched == 0:
            return (f'none of the last {images} images matched a radar sweep (radar topics, stamps within '
                    f'slop?)')
        if matched > 0 and since.get('frames.processed', 0) == 0:
            return f'{matched} frames matched, none processed yet (model too slow?)'
        return 'no dropped frame counted (model too slow?)'

    def _grown(self, tag, totals):
        grown = []
        for name, total in totals.items():
            key = tag + name
            if total > self._previous.get(key, 0):
                grown.append(f'{name} +{total - self._previous.get(key, 0)}')
            self._previous[key] = total
        return grown


def waiting_message(image_input):
    """Return the OK message while no image arrives, naming what could hold them back when a publisher exists."""
    if not image_input:
        return 'waiting for images'
    topic, publishers, segment = image_input
    if not publishers:
        return f'waiting for images (no publisher on {topic})'
    limit = f'an image larger than the {describe_bytes(segment)} DDS shared-memory segment' if segment else \
        'an image larger than the DDS transport can carry'
    return (f'waiting for images: {publishers} publisher(s) on {topic} but no image arrives ({limit} is dropped '
            f'without notice; or a QoS mismatch)')


def diagnostic_array(stamp, name, hardware_id, level, message, report):
    """Return a DiagnosticArray with one status ``name`` holding the flattened ``report``."""
    status = DiagnosticStatus(level=level, name=name, message=message, hardware_id=str(hardware_id))
    status.values = [KeyValue(key=k, value=v) for k, v in flatten(report)]
    array = DiagnosticArray()
    array.header.stamp = stamp
    array.status = [status]
    return array


def status_values(array):
    """Return ``{key: value}`` of the first status of a DiagnosticArray (tests, the demo's summary)."""
    if not array.status:
        return {}
    return {kv.key: kv.value for kv in array.status[0].values}
