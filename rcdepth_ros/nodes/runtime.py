"""
Start, spin and stop a node process: the ROS environment, rclpy init, SIGINT / SIGTERM, lifecycle, clean shutdown.

rclpy's own signal handler shuts the context down from inside the handler, after which a node can no longer
publish its last words (the evaluator's report, a lifecycle node's deactivation). Here a signal only sets a flag;
the spin loop sees it, the node is stopped in order (deactivate, cleanup for lifecycle nodes; ``close()`` for
others) and only then is rclpy shut down.
"""

import signal
import threading

from rcdepth_ros.ros_env import configure_ros_environment


class StopFlag:
    """Set by SIGINT / SIGTERM (or by ``request``); ``install`` / ``restore`` swap the process's handlers."""

    def __init__(self):
        """Start unset."""
        self.event = threading.Event()
        self._previous = {}

    def install(self):
        """Catch SIGINT and SIGTERM (main thread only)."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.event.set()

    def restore(self):
        """Put the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def is_set(self):
        """Return whether a stop was asked for."""
        return self.event.is_set()

    def request(self):
        """Ask for a stop."""
        self.event.set()


def init_rclpy(args=None):
    """Configure the ROS environment and initialise rclpy without its signal handlers; return the rclpy module."""
    configure_ros_environment()
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def lifecycle_state(node):
    """Return the label of a lifecycle node's current state ('unconfigured', 'inactive', 'active', ...)."""
    return node._state_machine.current_state[1]


def bring_up(node):
    """Configure and activate a lifecycle node; return True when it ends active (errors are logged by the node)."""
    from rclpy.lifecycle import TransitionCallbackReturn
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error('configure failed; the node stays unconfigured')
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error('activate failed; the node stays inactive')
        return False
    return True


def bring_down(node):
    """Deactivate and clean up a lifecycle node from whatever state it is in."""
    state = lifecycle_state(node)
    if state == 'active':
        node.trigger_deactivate()
        state = lifecycle_state(node)
    if state == 'inactive':
        node.trigger_cleanup()


def run(make_node, args=None, lifecycle=True, spin_period_s=0.1):
    """
    Run one node until SIGINT / SIGTERM or until it asks to stop (``node.finished()`` when it has one).

    Returns the process exit status: 1 when a lifecycle node could not be brought up, else 0.
    """
    rclpy = init_rclpy(args)
    from rclpy.executors import SingleThreadedExecutor
    stop = StopFlag().install()
    node = None
    executor = SingleThreadedExecutor()
    status = 0
    try:
        node = make_node()
        executor.add_node(node)
        if lifecycle and not bring_up(node):
            status = 1
            return status
        finished = getattr(node, 'finished', None)
        while not stop.is_set() and rclpy.ok() and not (finished is not None and finished()):
            executor.spin_once(timeout_sec=spin_period_s)
    finally:
        if node is not None:
            try:
                if lifecycle:
                    bring_down(node)
                close = getattr(node, 'close', None)
                if close is not None:
                    close()
            finally:
                executor.shutdown(timeout_sec=1.0)
                node.destroy_node()
        stop.restore()
        rclpy.try_shutdown()
    return status
