"""
Multi-process training through ``torchrun`` / ``torch.distributed.run`` (DistributedDataParallel).

A process started by torchrun has ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` in its environment; with
``WORLD_SIZE`` > 1 the process group is initialised (NCCL on CUDA, gloo on the CPU) and each rank trains on its
share of every step's batches (``loop.data.EpochBatchOrder``). Only rank 0 writes files and prints progress.
"""

import dataclasses
import hashlib
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistributedInfo:
    """This process's place: rank, local rank, world size; ``enabled`` when more than one process trains."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self):
        """Return True under a multi-process launch."""
        return self.world_size > 1

    @property
    def is_main(self):
        """Return True on the rank that writes files."""
        return self.rank == 0


def init_distributed(device_type):
    """Initialise the process group when launched by torchrun with several processes; return DistributedInfo."""
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world <= 1:
        return DistributedInfo()
    info = DistributedInfo(int(os.environ['RANK']), int(os.environ.get('LOCAL_RANK', '0')), world)
    if not dist.is_initialized():
        dist.init_process_group('nccl' if device_type == 'cuda' else 'gloo')
    return info


def barrier(info):
    """Wait for every rank (no-op without DDP)."""
    if info.enabled:
        dist.barrier()


def broadcast_object(info, value):
    """Return rank 0's ``value`` on every rank."""
    if not info.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather_objects(info, value):
    """Return the list of every rank's ``value`` (on every rank)."""
    if not info.enabled:
        return [value]
    out = [None] * info.world_size
    dist.all_gather_object(out, value)
    return out


def shutdown(info):
    """Destroy the process group."""
    if info.enabled:
        if dist.is_initialized():
            dist.destroy_process_group()


def broadcast_buffers(info, module):
    """
    Copy rank 0's buffers (batch-norm statistics) to every rank.

    DDP synchronises buffers at the start of each forward pass, so after the last step each rank still holds the
    statistics of its own last batch; this makes the replicas whole copies of rank 0's model.
    """
    if info.enabled:
        for buffer in module.buffers():
            dist.broadcast(buffer.data, src=0)


def state_digest(module, buffers=True):
    """Return the SHA-256 of a module's parameters (and buffers): names, dtypes, shapes and bytes."""
    digest = hashlib.sha256()
    items = module.state_dict().items() if buffers else module.named_parameters()
    for name, tensor in sorted(items):
        t = tensor.detach().to('cpu').contiguous().reshape(-1)
        digest.update(f'{name}:{t.dtype}:{tuple(t.shape)}'.encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b'')
    return digest.hexdigest()
