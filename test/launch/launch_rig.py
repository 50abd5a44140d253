"""
What the launch tests share: whether they can run, an ament prefix of this checkout, inputs, and a ROS client.

The launch files start executables by package (``Node(package='rcdepth_ros', executable=...)``) and find the
parameters file with ``FindPackageShare``, which a colcon install provides. So that the tests exercise this
checkout wherever ``launch`` is importable (a sourced ROS 2 without this package built, too), ``source_prefix``
lays out an ament prefix in a temporary folder: the package marker, ``share/rcdepth_ros/{config,launch,weights}``
linked to the checkout, and ``lib/rcdepth_ros/<executable>`` scripts running this interpreter on the package's
entry points; it is put first on ``AMENT_PREFIX_PATH``.
"""

import importlib.util
import os
from pathlib import Path
import stat
import sys
import tempfile
import time

ROOT = Path(__file__).resolve().parents[2]
LAUNCH_DIR = ROOT / 'launch'
ENTRY_POINTS = {'rcdepth': 'rcdepth_ros.cli', 'rcdepth_node': 'rcdepth_ros.nodes.depth_node',
                'rcdepth_eval_node': 'rcdepth_ros.nodes.eval_node'}


def missing_launch_stack():
    """Return why the launch tests cannot run here (None when launch, launch_ros and launch_testing import)."""
    missing = [name for name in ('launch', 'launch_ros', 'launch_testing') if importlib.util.find_spec(name) is None]
    if 'launch' not in missing:
        import launch
        if not hasattr(launch, 'LaunchDescription'):     # this repository's bare launch/ folder, not ROS 2 launch
            missing.insert(0, 'launch')
    if missing:
        return (f'ROS 2 {", ".join(missing)} not importable here (not installable from PyPI); the launch tests run '
                f'on a ROS 2 install (test/launch/test_launch_files.py checks the files statically)')
    return None


def work_folder(name):
    """Return a new temporary folder for one launch test's files."""
    return Path(tempfile.mkdtemp(prefix=f'rcdepth_{name}_'))


def source_prefix(folder):
    """Lay out an ament prefix of this checkout under ``folder`` and put it first on AMENT_PREFIX_PATH."""
    prefix = Path(folder) / 'prefix'
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / 'rcdepth_ros'
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text('')
    share = prefix / 'share' / 'rcdepth_ros'
    share.mkdir(parents=True, exist_ok=True)
    for name in ('config', 'launch', 'weights'):
        if (ROOT / name).exists() and not (share / name).exists():
            (share / name).symlink_to(ROOT / name)
    lib = prefix / 'lib' / 'rcdepth_ros'
    lib.mkdir(parents=True, exist_ok=True)
    for executable, module in ENTRY_POINTS.items():
        script = lib / executable
        script.write_text(f'#!{sys.executable}\nimport sys\nsys.path.insert(0, {str(ROOT)!r})\n'
                          f'from {module} import main\nsys.exit(main())\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    previous = os.environ.get('AMENT_PREFIX_PATH', '')
    os.environ['AMENT_PREFIX_PATH'] = str(prefix) + (os.pathsep + previous if previous else '')
    return prefix


def tiny_checkpoint(folder):
    """Save the tests' tiny seeded student (test/conftest.py) under ``folder``; return its path."""
    import torch

    from conftest import TINY_STUDENT_CONFIG
    from rcdepth_ros.models import build_model, load_model_config, save_checkpoint
    input_cfg, model_cfg = load_model_config(TINY_STUDENT_CONFIG)
    torch.manual_seed(0)
    model = build_model(model_cfg, input_cfg).eval()
    return save_checkpoint(Path(folder) / 'tiny', model, input_cfg, model_cfg)


def write_parameters(path, node_name, values):
    """Write a ROS 2 parameters file giving ``values`` to ``node_name`` in any namespace (None: every node)."""
    import yaml
    key = '/**' if node_name is None else f'/**/{node_name}'
    Path(path).write_text(yaml.safe_dump({key: {'ros__parameters': dict(values)}}))
    return path


class RosClient:
    """A node of the test's own (own rclpy context), spun from the test thread."""

    def __init__(self, name='launch_test_client'):
        """Start rclpy in a new context and create the node and an executor."""
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received = {}

    def spin_until(self, predicate, timeout):
        """Spin until ``predicate()`` holds; return whether it did within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            self.executor.spin_once(timeout_sec=0.05)
        return predicate()

    def spin_for(self, seconds):
        """Spin for ``seconds``."""
        self.spin_until(lambda: False, seconds)

    def lifecycle_state(self, node_name, timeout=10.0):
        """Return the label of the lifecycle state of ``node_name`` (its get_state service), or None."""
        from lifecycle_msgs.srv import GetState
        client = self.node.create_client(GetState, f'{node_name}/get_state')
        try:
            if not self.spin_until(client.service_is_ready, timeout):
                return None
            future = client.call_async(GetState.Request())
            if not self.spin_until(future.done, timeout):
                return None
            return future.result().current_state.label
        finally:
            self.node.destroy_client(client)

    def wait_for_state(self, node_name, label, timeout):
        """Return whether ``node_name`` reaches the lifecycle state ``label`` within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.lifecycle_state(node_name, timeout=max(0.1, deadline - time.monotonic())) == label:
                return True
            self.spin_for(0.2)
        return False

    def topics(self):
        """Return ``{topic: [types]}`` of the graph."""
        return dict(self.node.get_topic_names_and_types())

    def collect(self, kind, topic, depth=50):
        """Keep every ``kind`` message of ``topic`` in ``received[topic]``; return that list."""
        from rcdepth_ros.nodes.qos import qos_from_string
        bucket = self.received.setdefault(topic, [])
        self.node.create_subscription(kind, topic, bucket.append, qos_from_string('reliable', depth))
        return bucket

    def publisher(self, kind, topic):
        """Return a reliable publisher on ``topic``."""
        from rcdepth_ros.nodes.qos import qos_from_string
        return self.node.create_publisher(kind, topic, qos_from_string('reliable', 10))

    def close(self):
        """Destroy the node and shut the context down."""
        import rclpy
        self.executor.remove_node(self.node)
        self.node.destroy_node()
        self.executor.shutdown(timeout_sec=1.0)
        rclpy.try_shutdown(context=self.context)
