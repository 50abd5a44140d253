"""
What every benchmark shares: the machine record, the load around a measurement, medians, writing results.

The machine is often shared, so each result file records what the timings had: ``machine_record()`` (the same keys
in every file: ``cpu_count``, ``platform``, ``processor``, ``python``, ``numpy``, ``torch``, ``torch_threads``,
``cuda``) and ``load_average_before`` / ``load_average_after`` (the 1-minute load average) around each timed part
(``LoadRecord``). Results go to ``benchmarks/results/`` through ``write_results``.

The benchmarks are scripts (``.venv/bin/python benchmarks/bench_x.py``): this module sits beside them, on their
``sys.path``, and the tests load them with ``benchmarks`` on theirs (``pytest.ini``).
"""

import datetime
import json
import os
from pathlib import Path
import platform
import statistics
import sys

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / 'benchmarks' / 'results'


def machine_record(**extra):
    """Return the machine and library versions a timing was taken with (torch and CUDA when torch is loaded)."""
    record = {'cpu_count': os.cpu_count(), 'platform': platform.platform(),
              'processor': platform.processor() or platform.machine(), 'python': platform.python_version(),
              'numpy': np.__version__}
    torch = sys.modules.get('torch')
    if torch is not None:
        record.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                      cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    record.update(extra)
    return record


def load_average():
    """Return the 1-minute load average, rounded to 0.01."""
    return round(os.getloadavg()[0], 2)


class LoadRecord:
    """
    ``with LoadRecord() as load: ...`` records the load average before and after the block.

    ``load.as_dict()`` is ``{'load_average_before': .., 'load_average_after': ..}``, the keys every result uses.
    """

    def __enter__(self):
        """Record the load before the block."""
        self.before = load_average()
        self.after = None
        return self

    def __exit__(self, *exc):
        """Record the load after the block."""
        self.after = load_average()
        return False

    def as_dict(self):
        """Return the two loads under their result keys."""
        return {'load_average_before': self.before, 'load_average_after': self.after}


def median(values):
    """Return the median of ``values`` (None when empty)."""
    values = list(values)
    return statistics.median(values) if values else None


def command_line(script, argv=None):
    """Return the command that reproduces a run: ``.venv/bin/python benchmarks/<script> <arguments>``."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    return ' '.join(['.venv/bin/python', f'benchmarks/{script}'] + arguments)


def timestamp():
    """Return the local time in ISO format (seconds)."""
    return datetime.datetime.now().isoformat(timespec='seconds')


def write_results(path, result):
    """Write ``result`` as indented JSON to ``path`` (folders made as needed), say so, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {path}')
    return path
