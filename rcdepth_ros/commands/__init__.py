"""
Subcommands of the ``rcdepth`` command line.

Each module here defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``; ``cli.py`` lists
them and imports only the one that runs, so ``rcdepth --help`` and every command start fast.
"""
