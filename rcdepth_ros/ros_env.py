"""
Environment every process that may start rclpy needs here: local discovery, own domain, shared-memory DDS.

Why: without ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` DDS multicasts discovery out of every interface; two
test runs on one host in the same ``ROS_DOMAIN_ID`` hear each other; and with the default Fast DDS transports a
best-effort message above about 1 MB (a 900x1600 float image is 5.8 MB) is never delivered. Fast DDS 2.x (ROS 2
Humble, Jazzy) reads ``FASTRTPS_DEFAULT_PROFILES_FILE``, Fast DDS 3.x reads ``FASTDDS_DEFAULT_PROFILES_FILE``: both
are set. This module imports nothing from ROS, so it can run before rclpy is imported.
"""

import os
import xml.etree.ElementTree as ElementTree

from rcdepth_ros.paths import config_file

PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


def default_domain_id(pid=None):
    """Return a DDS domain id in [20, 219] derived from the process id, so parallel runs differ."""
    pid = os.getpid() if pid is None else pid
    return 20 + pid % 200


def configure_ros_environment(environ=None, domain_id=None):
    """
    Fill in the ROS 2 variables this package relies on, keeping any value the caller already set.

    Returns the mapping it modified (``os.environ`` by default), so a caller can hand it to a subprocess.
    """
    env = os.environ if environ is None else environ
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    if domain_id is not None:
        env['ROS_DOMAIN_ID'] = str(domain_id)
    else:
        env.setdefault('ROS_DOMAIN_ID', str(default_domain_id()))
    profile = str(config_file('fastdds_shm.xml'))
    for name in PROFILE_VARIABLES:
        env.setdefault(name, profile)
    return env


def shm_segment_bytes(environ=None):
    """
    Return the shared-memory segment size (bytes) of the Fast DDS profile this process loads, or None if unknown.

    A message larger than the segment cannot be held in it whole: measured here, best-effort images above it
    arrive only now and then, and nothing on the receiving side says that one was lost. The player and the node's
    diagnostics name this limit. None when another RMW is chosen, no profile is set, or it has no SHM transport.
    """
    env = os.environ if environ is None else environ
    if env.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return None
    path = next((env[name] for name in PROFILE_VARIABLES if env.get(name)), None)
    if path is None:
        return None
    try:
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    for descriptor in root.iter():
        if not descriptor.tag.endswith('transport_descriptor'):
            continue
        fields = {child.tag.rsplit('}', 1)[-1]: (child.text or '').strip() for child in descriptor}
        if fields.get('type') == 'SHM':
            try:
                return int(fields.get('segment_size', ''))
            except ValueError:
                return None
    return None


def describe_bytes(count):
    """Return a size in MiB (one decimal), KiB or bytes: the binary units DDS segment sizes are given in."""
    if count >= 2 ** 20:
        return f'{count / 2 ** 20:.1f} MiB'
    return f'{count / 2 ** 10:.1f} KiB' if count >= 2 ** 10 else f'{int(count)} bytes'
