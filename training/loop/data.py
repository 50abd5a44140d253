"""
Data for a run: readers through the registry, ``RadarCameraDataset``s, and the resumable per-epoch batch order.

The batch order of epoch e is a permutation drawn from ``(seed, e)`` alone, cut into full batches (the last,
incomplete batch is dropped: batch norm needs more than one sample) and, under DDP, dealt out to the ranks
(rank r takes batches r, r + world, ...). Nothing depends on an RNG state, so a resumed run continues at
``(epoch, step)`` with exactly the batches the uninterrupted run would have seen. Augmentation draws depend on
(seed, epoch, frame index) only (``rcdepth_ros.data.augment.rng_for``), never on the worker or the order.
"""

import dataclasses

import numpy as np
from rcdepth_ros.data.cache import PreprocessCache
from rcdepth_ros.data.dataset import RadarCameraDataset
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import DatasetError


def open_split(data_cfg, split_cfg):
    """Return the reader of one split (``SplitConfig``) of the experiment's source."""
    options = dict(data_cfg.options)
    return open_reader(data_cfg.source, data_cfg.root, split=split_cfg.split, frames=split_cfg.frames, **options)


def build_dataset(data_cfg, input_cfg, split_cfg, seed, augment=True):
    """Return the RadarCameraDataset of a split; ``augment`` applies ``data_cfg.augment`` with the run's seed."""
    reader = open_split(data_cfg, split_cfg)
    if len(reader) == 0:
        raise DatasetError(f'{data_cfg.source}: split {split_cfg} selects no frame')
    cache = PreprocessCache(data_cfg.cache_dir) if data_cfg.cache else None
    aug = dataclasses.replace(data_cfg.augment, seed=int(seed)) if augment and data_cfg.augment else None
    return RadarCameraDataset(reader, input_cfg, aug, cache)


class EpochBatchOrder:
    """The batches (lists of dataset indices) of every epoch for one rank (see the module docstring)."""

    def __init__(self, size, batch_size, seed, rank=0, world_size=1, max_steps=None):
        """Check that one step fits: ``size`` >= ``batch_size * world_size``."""
        self.size, self.batch_size, self.seed = int(size), int(batch_size), int(seed)
        self.rank, self.world_size = int(rank), int(world_size)
        full = self.size // (self.batch_size * self.world_size)
        if full < 1:
            raise DatasetError(f'training split has {self.size} frames: fewer than one step of batch {batch_size} '
                               f'x {world_size} process(es)')
        self.steps_per_epoch = full if max_steps is None else min(full, int(max_steps))

    def permutation(self, epoch):
        """Return the frame order of ``epoch`` (the same on every rank)."""
        return np.random.default_rng([self.seed, int(epoch), 0x5EED]).permutation(self.size)

    def batches(self, epoch, start_step=0):
        """Return this rank's batches of ``epoch`` from step ``start_step`` on."""
        order = self.permutation(epoch)
        per_step = self.batch_size * self.world_size
        out = []
        for step in range(start_step, self.steps_per_epoch):
            chunk = order[step * per_step:(step + 1) * per_step]
            out.append([int(i) for i in chunk[self.rank * self.batch_size:(self.rank + 1) * self.batch_size]])
        return out


def make_loader(dataset, batches, workers=0):
    """Return a DataLoader yielding exactly ``batches`` (lists of indices), collated."""
    import torch
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                       persistent_workers=False, pin_memory=False)


def sequential_batches(size, batch_size, limit=None):
    """Return the batches of a validation pass: indices in order, the last batch possibly smaller."""
    count = size if limit is None else min(size, int(limit))
    return [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
