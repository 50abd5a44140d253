"""
Data for a run: readers through the registry, ``RadarCameraDataset``s, and the resumable per-epoch batch order.

Loaders are built once per run (``make_loader``): worker processes may persist across epochs, because each batch
carries its epoch in its indices (``(epoch, index)`` pairs from ``EpochSampler``) and the augmentation follows it,
so a worker's copy of the dataset never needs ``set_epoch``. ``pin_memory`` ('auto': on CUDA) lets the trainer
copy batches to the GPU asynchronously.

The batch order of epoch e is a permutation drawn from ``(seed, e)`` alone, cut into full batches (the last,
incomplete batch is dropped: batch norm needs more than one sample) and, under DDP, dealt out to the ranks
(rank r takes batches r, r + world, ...). Nothing depends on an RNG state, so a resumed run continues at
``(epoch, step)`` with exactly the batches the uninterrupted run would have seen. Augmentation draws depend on
(seed, epoch, frame index) only (``rcdepth_ros.data.augment.rng_for``), never on the worker or the order.
"""

import dataclasses
import os

import numpy as np
from rcdepth_ros.data.cache import PreprocessCache
from rcdepth_ros.data.dataset import RadarCameraDataset
from rcdepth_ros.data.registry import open_reader
from rcdepth_ros.errors import DatasetError
import torch


def open_split(data_cfg, split_cfg):
    """Return the reader of one split (``SplitConfig``) of the experiment's source."""
    options = dict(data_cfg.options)
    return open_reader(data_cfg.source, data_cfg.root, split=split_cfg.split, frames=split_cfg.frames, **options)


def build_dataset(data_cfg, input_cfg, split_cfg, seed, augment=True, lidar_input=None, aligned_maps=None):
    """
    Return the RadarCameraDataset of a split; ``augment`` applies ``data_cfg.augment`` with the run's seed.

    ``lidar_input`` (a ``LidarInputConfig`` with rings) adds the lidar-input channels and the held-out GT;
    ``aligned_maps`` the offline teacher targets.
    """
    reader = open_split(data_cfg, split_cfg)
    if len(reader) == 0:
        raise DatasetError(f'{data_cfg.source}: split {split_cfg} selects no frame')
    cache = PreprocessCache(data_cfg.cache_dir) if data_cfg.cache else None
    aug = dataclasses.replace(data_cfg.augment, seed=int(seed)) if augment and data_cfg.augment else None
    rings = lidar_input.rings if lidar_input is not None and lidar_input.enabled else None
    scale = lidar_input.depth_scale if rings else 100.0
    radius = lidar_input.prior_radius if rings and lidar_input.prior else None
    return RadarCameraDataset(reader, input_cfg, aug, cache, lidar_rings=rings, lidar_depth_scale=scale,
                              aligned_maps=aligned_maps, lidar_prior_radius=radius)


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


class EpochSampler:
    """A batch sampler yielding this rank's batches of the epoch chosen by ``start`` as ``(epoch, index)`` lists."""

    def __init__(self, order):
        """Keep the ``EpochBatchOrder``; nothing is yielded before ``start``."""
        self.order = order
        self.batches = []

    def start(self, epoch, step=0):
        """Select the batches of ``epoch`` from step ``step`` on."""
        self.batches = [[(int(epoch), i) for i in batch] for batch in self.order.batches(epoch, step)]

    def __iter__(self):
        """Yield the selected batches."""
        return iter(list(self.batches))

    def __len__(self):
        """Return the number of selected batches."""
        return len(self.batches)


def resolve_workers(workers, device_type):
    """Return the worker count of ``data.workers`` ('auto': on CUDA all cores but one, at most 8; else 0)."""
    if workers != 'auto':
        return int(workers)
    if device_type != 'cuda':
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


def make_loader(dataset, batches, workers=0, pin_memory=False, persistent=False, prefetch=2):
    """Return a DataLoader yielding exactly ``batches`` (lists of indices, or an ``EpochSampler``), collated."""
    extra = {'prefetch_factor': int(prefetch)} if workers > 0 else {}
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=workers,
                                       persistent_workers=bool(persistent and workers > 0),
                                       pin_memory=bool(pin_memory), **extra)


def sequential_batches(size, batch_size, limit=None):
    """Return the batches of a validation pass: indices in order, the last batch possibly smaller."""
    count = size if limit is None else min(size, int(limit))
    return [list(range(i, min(i + batch_size, count))) for i in range(0, count, batch_size)]
