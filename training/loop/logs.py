"""
What a run reports while it trains: CSV logs, TensorBoard scalars and a tqdm progress bar (rank 0 only).

``logs/train.csv`` has one row per ``log_every_steps`` steps (step, epoch, lr, total loss, each term, seconds per
step); ``logs/val.csv`` one row per validation (epoch, step, frames, ``<metric>@<cap>``). On resume both files keep
only the rows up to the resumed step (rows written after the last checkpoint describe steps that are trained
again), and TensorBoard purges the events after that step, so curves never hold a step twice.
"""

import csv
from pathlib import Path

from rcdepth_ros.evaluation.metrics import cap_key, METRIC_NAMES
from tqdm import tqdm


class CsvLog:
    """An append-only CSV file with fixed columns; ``keep_through`` trims rows after a resumed step."""

    def __init__(self, path, fields, keep_through=None, step_field='step'):
        """Open ``path``: fresh (truncated) when ``keep_through`` is None, else keep rows with step <= it."""
        self.path = Path(path)
        self.fields = list(fields)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        kept = []
        if keep_through is not None and self.path.is_file():
            with open(self.path, newline='') as handle:
                for row in csv.DictReader(handle):
                    try:
                        if int(float(row.get(step_field) or 0)) <= keep_through:
                            kept.append(row)
                    except ValueError:
                        continue
        with open(self.path, 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=self.fields, extrasaction='ignore')
            writer.writeheader()
            writer.writerows(kept)

    def write(self, row):
        """Append one row (missing columns empty) and flush it to disk."""
        with open(self.path, 'a', newline='') as handle:
            csv.DictWriter(handle, fieldnames=self.fields, extrasaction='ignore').writerow(row)

    def rows(self):
        """Return every row as a dict of strings."""
        with open(self.path, newline='') as handle:
            return list(csv.DictReader(handle))


def val_fields(caps):
    """Return the validation CSV columns for ``caps``."""
    return ['epoch', 'step', 'frames'] + [f'{m}@{cap_key(c)}' for c in caps for m in METRIC_NAMES]


def val_row(epoch, step, result):
    """Return the CSV row of a MetricsResult."""
    row = {'epoch': epoch, 'step': step, 'frames': result.frames}
    for key, metrics in result.caps.items():
        for name, value in metrics.items():
            row[f'{name}@{key}'] = '' if value is None else value
    return row


class RunLogger:
    """CSV + TensorBoard + progress for rank 0; every method is a no-op on other ranks."""

    def __init__(self, run_dir, term_names, caps, enabled=True, resume_step=None, tensorboard=True, progress=True):
        """Open the logs under ``<run>/logs`` (trimmed to ``resume_step`` when resuming)."""
        self.enabled = enabled
        self.progress_enabled = enabled and progress
        self.writer = None
        self.bar = None
        if not enabled:
            return
        logs = Path(run_dir) / 'logs'
        self.train = CsvLog(logs / 'train.csv', ['step', 'epoch', 'lr', 'loss'] + list(term_names) +
                            ['seconds_per_step'], resume_step)
        self.val = CsvLog(logs / 'val.csv', val_fields(caps), resume_step)
        if tensorboard:
            # tensorboard is slow to import and optional (train.tensorboard)
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(str(logs / 'tensorboard'), purge_step=resume_step)

    def log_step(self, step, epoch, lr, loss, terms, seconds_per_step):
        """Record one training step's numbers."""
        if not self.enabled:
            return
        self.train.write({'step': step, 'epoch': epoch, 'lr': lr, 'loss': loss, 'seconds_per_step': seconds_per_step,
                          **terms})
        if self.writer is not None:
            self.writer.add_scalar('train/loss', loss, step)
            self.writer.add_scalar('train/lr', lr, step)
            for name, value in terms.items():
                self.writer.add_scalar(f'train/{name}', value, step)

    def log_validation(self, epoch, step, result):
        """Record one validation's metrics."""
        if not self.enabled:
            return
        self.val.write(val_row(epoch, step, result))
        if self.writer is not None:
            for key, metrics in result.caps.items():
                for name in ('mae', 'rmse', 'absrel', 'delta1'):
                    if metrics.get(name) is not None:
                        self.writer.add_scalar(f'val/{name}@{key}', metrics[name], step)
            self.writer.flush()

    def start_epoch(self, epoch, epochs, total, initial):
        """Open the progress bar of an epoch (``initial`` steps already done when resuming)."""
        if self.progress_enabled:
            self.bar = tqdm(total=total, initial=initial, desc=f'epoch {epoch + 1}/{epochs}', dynamic_ncols=True,
                            leave=True)

    def advance(self, loss, lr):
        """Move the progress bar by one step, showing loss and lr (tqdm shows the ETA)."""
        if self.bar is not None:
            self.bar.set_postfix(loss=f'{loss:.4f}', lr=f'{lr:.2e}', refresh=False)
            self.bar.update(1)

    def end_epoch(self):
        """Close the progress bar."""
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def close(self):
        """Close the progress bar and TensorBoard writer."""
        self.end_epoch()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
