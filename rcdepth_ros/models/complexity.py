"""
Model complexity: parameters per module, multiply-accumulates (MACs) counted with forward hooks, and latency.

MACs counted (the usual convention of papers' "GMAC" figures; element-wise ops, activations, pooling, softmax and
interpolation are not counted):

- ``Conv2d``: output elements x (input channels / groups) x kernel area;
- ``ConvTranspose2d``: input elements x (output channels / groups) x kernel area;
- ``Linear``: output elements x input features;
- ``BatchNorm2d``: one per output element (scale and shift; zero once folded into the convolution for export).
"""

import collections
import statistics
import time

import torch
from torch import nn


def count_parameters(model, depth=1):
    """
    Return an ordered dict: module name (up to ``depth`` levels, '.'-joined) -> number of parameters, plus 'total'.

    Every parameter is counted once, under the deepest listed module that owns it.
    """
    counts = collections.OrderedDict()
    for name, param in model.named_parameters():
        key = '.'.join(name.split('.')[:depth]) if '.' in name else name
        counts[key] = counts.get(key, 0) + param.numel()
    counts['total'] = sum(p.numel() for p in model.parameters())
    return counts


def _layer_macs(module, inputs, output):
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.ConvTranspose2d):
        kh, kw = module.kernel_size
        return inputs[0].numel() * (module.out_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.BatchNorm2d):
        return output.numel()
    return 0


def count_macs(model, *inputs, depth=1):
    """
    Run ``model(*inputs)`` once (no grad) and return (total MACs per batch, ordered dict module name -> MACs).

    Names are truncated to ``depth`` levels like ``count_parameters``.
    """
    per_module = collections.OrderedDict()
    handles = []

    def hook(name):
        def record(module, args, output):
            key = '.'.join(name.split('.')[:depth])
            per_module[key] = per_module.get(key, 0) + _layer_macs(module, args, output)
        return record

    for name, module in model.named_modules():
        if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d)):
            handles.append(module.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return sum(per_module.values()), per_module


def measure_latency(fn, runs=20, warmup=3, synchronize=None):
    """
    Call ``fn()`` ``warmup`` times, then ``runs`` times; return the list of wall times in milliseconds.

    ``synchronize`` (e.g. ``torch.cuda.synchronize``) is called after each call so asynchronous devices are timed
    to completion.
    """
    for _ in range(warmup):
        fn()
        if synchronize:
            synchronize()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        if synchronize:
            synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return times


def median(values):
    """Return the median of a non-empty sequence."""
    return statistics.median(values)
