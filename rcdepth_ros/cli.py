"""
The ``rcdepth`` command line: one entry point, one subcommand per module in ``rcdepth_ros.commands``.

A command that fails on bad input raises an ``RcdepthError``; the message is printed without a traceback and
the exit status is 2. An ``OSError`` (a file that cannot be read or written, a full disk) is reported the same way:
one line naming the file and the reason.
"""

import argparse
import importlib
import sys

from rcdepth_ros.errors import RcdepthError

# name on the command line -> module in rcdepth_ros.commands, one line of help
COMMANDS = {
    'info': ('info', 'parameters per module, MACs and latency of a model config or checkpoint'),
    'export': ('export', 'export a checkpoint to ONNX and TorchScript, checked against torch'),
    'show': ('show', 'draw radar and lidar on the image of a data set frame'),
    'make-bag': ('make_bag', 'write a data set as a rosbag2 (MCAP) file'),
    'play': ('play', 'publish a rosbag2 file with its original timing (needs rclpy)'),
    'eval': ('evaluate', 'evaluate a model on a data set and print the metrics JSON'),
    'eval-bag': ('eval_bag', 'evaluate a model on a rosbag2 file offline, through the core'),
    'demo': ('demo', 'synthetic drive -> bag -> node over ROS 2 -> live evaluation -> out/demo'),
}


def build_parser():
    """Return the argument parser with every subcommand registered (each module imported lazily)."""
    parser = argparse.ArgumentParser(prog='rcdepth', description=__doc__.strip().splitlines()[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    for name, (module_name, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None):
    """Run ``rcdepth COMMAND ...``; return the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        parser = build_parser()
        if argv and argv[0] not in ('-h', '--help'):
            parser.print_usage(sys.stderr)
            print(f'rcdepth: unknown command {argv[0]!r}; choose from {", ".join(COMMANDS)}', file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name, rest = argv[0], argv[1:]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f'rcdepth_ros.commands.{module_name}')
    parser = argparse.ArgumentParser(prog=f'rcdepth {name}', description=help_text)
    module.add_arguments(parser)
    args = parser.parse_args(rest)
    try:
        return int(module.run(args) or 0)
    except RcdepthError as exc:
        print(f'rcdepth {name}: error: {exc}', file=sys.stderr)
        return 2
    except OSError as exc:
        print(f'rcdepth {name}: error: {describe_os_error(exc)}', file=sys.stderr)
        return 2


def describe_os_error(exc):
    """Return one line for an OSError: the file(s) it names and the system's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [str(f) for f in (exc.filename, exc.filename2) if f is not None]
    return f'{" -> ".join(files)}: {reason}' if files else reason


if __name__ == '__main__':
    sys.exit(main())
