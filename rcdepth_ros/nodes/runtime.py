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
    # rclpy: imported when a ROS process starts (`rcdepth` commands without ROS never load it)
    import rclpy
    from rclpy.signals import SignalHandlerOptions
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def lifecycle_state(node):
    """Return the label of a lifecycle node's current state ('unconfigured', 'inactive', 'active', ...)."""
    return node._state_machine.current_state[1]


def bring_up(node):
    """
    Configure and activate a lifecycle node; return True when it ends active (the reason is logged by the node).

    On a failure the node is left where the transition left it (unconfigured, or inactive) and the log says so and
    how to go on: a lifecycle node in that state still serves its parameter and lifecycle services, so a manager
    (or ``ros2 param set`` + ``ros2 lifecycle set``) can fix the parameter and configure it again.
    """
    from rclpy.lifecycle import TransitionCallbackReturn
    name = node.get_fully_qualified_name()
    if node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error(
            f'configure failed; the node stays unconfigured and keeps running: fix the parameter named above '
            f'(ros2 param set {name} model_path ...), then configure and activate it again (ros2 lifecycle set '
            f'{name} configure; ros2 lifecycle set {name} activate), or stop it with Ctrl-C')
        return False
    if node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
        node.get_logger().error(
            f'activate failed; the node stays inactive and keeps running: fix the parameter named above, then '
            f'activate it again (ros2 lifecycle set {name} activate), or stop it with Ctrl-C')
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

    A lifecycle node is configured and activated first; when that fails it stays in the state it reached
    (unconfigured or inactive) and the process keeps spinning, so a lifecycle manager can fix its parameters and
    bring it up through its services (see ``bring_up``). Returns the process exit status, 0 after a stop.
    """
    rclpy = init_rclpy(args)
    from rclpy.executors import SingleThreadedExecutor
    stop = StopFlag().install()
    node = None
    executor = SingleThreadedExecutor()
    try:
        node = make_node()
        executor.add_node(node)
        if lifecycle:
            bring_up(node)
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
    return 0
