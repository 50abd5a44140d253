"""
QoS profiles from string parameters, and the one-line description the nodes log at start.

Names: ``sensor_data`` (BEST_EFFORT, VOLATILE, KEEP_LAST 5: what camera drivers publish with), ``best_effort``,
``reliable``, ``system_default``, ``services_default``, ``parameters``, ``transient_local`` (RELIABLE,
TRANSIENT_LOCAL: latched, as ``/tf_static``). ``depth`` overrides the history depth (KEEP_LAST) of any of them.
Subscribe BEST_EFFORT (it accepts both kinds of publisher), publish RELIABLE (every subscriber accepts it).
"""

from rcdepth_ros.errors import ConfigError
from rclpy.qos import (DurabilityPolicy, HistoryPolicy, qos_profile_parameters, qos_profile_sensor_data,
                       qos_profile_services_default, qos_profile_system_default, QoSProfile, ReliabilityPolicy)

QOS_NAMES = ('sensor_data', 'best_effort', 'reliable', 'system_default', 'services_default', 'parameters',
             'transient_local')


def _copy(profile):
    return QoSProfile(history=profile.history, depth=profile.depth, reliability=profile.reliability,
                      durability=profile.durability, lifespan=profile.lifespan, deadline=profile.deadline,
                      liveliness=profile.liveliness,
                      liveliness_lease_duration=profile.liveliness_lease_duration)


def qos_from_string(name, depth=None):
    """
    Return a new QoSProfile for ``name`` (see the module docstring), with KEEP_LAST ``depth`` when given.

    An unknown name raises ConfigError listing the known ones.
    """
    text = str(name).strip().lower()
    if text == 'sensor_data':
        profile = _copy(qos_profile_sensor_data)
    elif text == 'best_effort':
        profile = QoSProfile(depth=5, reliability=ReliabilityPolicy.BEST_EFFORT,
                             durability=DurabilityPolicy.VOLATILE)
    elif text == 'reliable':
        profile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
    elif text == 'system_default':
        profile = _copy(qos_profile_system_default)
    elif text == 'services_default':
        profile = _copy(qos_profile_services_default)
    elif text == 'parameters':
        profile = _copy(qos_profile_parameters)
    elif text == 'transient_local':
        profile = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
    else:
        raise ConfigError(f'QoS {name!r} unknown; choose from {", ".join(QOS_NAMES)}')
    if depth is not None:
        if int(depth) < 1:
            raise ConfigError(f'QoS depth must be >= 1, got {depth}')
        profile.history = HistoryPolicy.KEEP_LAST
        profile.depth = int(depth)
    return profile


def describe_qos(profile):
    """Return e.g. ``'best_effort, volatile, keep_last 5'`` for a profile."""
    history = profile.history.name.lower()
    if profile.history == HistoryPolicy.KEEP_LAST:
        history = f'{history} {profile.depth}'
    return f'{profile.reliability.name.lower()}, {profile.durability.name.lower()}, {history}'
