"""
``/diagnostics`` for the nodes: a nested report dict flattened into one DiagnosticStatus of key / value pairs.

The level: ERROR when inference failed since the last report, WARN when frames were dropped for a problem with the
input (bad image, no camera_info, unknown radar frame, ...) since the last report or when images come in but no
depth goes out, OK otherwise. The message says why. Diagnostics aggregators and ``rqt_robot_monitor`` read it.
"""

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

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
    """Decide the level from counters that grew since the previous report."""

    def __init__(self):
        """Start with nothing seen."""
        self._previous = {}

    def level(self, problems, errors, input_rate, output_rate):
        """
        Return (level, message).

        ``problems`` and ``errors`` map counter names to totals; a total that grew since the last call counts.
        """
        grown_errors = self._grown('e.', errors)
        grown_problems = self._grown('p.', problems)
        if grown_errors:
            return ERROR, 'inference failed: ' + ', '.join(grown_errors)
        if grown_problems:
            return WARN, 'frames or sweeps dropped: ' + ', '.join(grown_problems)
        if input_rate > 0 and output_rate == 0:
            return WARN, 'images arrive but no depth is published (no radar match? model too slow?)'
        if input_rate == 0:
            return OK, 'waiting for images'
        return OK, f'running at {output_rate:.1f} Hz'

    def _grown(self, tag, totals):
        grown = []
        for name, total in totals.items():
            key = tag + name
            if total > self._previous.get(key, 0):
                grown.append(f'{name} +{total - self._previous.get(key, 0)}')
            self._previous[key] = total
        return grown


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
