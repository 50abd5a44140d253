"""
CUDA graphs for the engine's forward (and saliency) passes: captured once per input signature, then replayed.

A small model at sensor rate is bound by kernel launches, not arithmetic: replaying a captured graph launches the
whole forward pass at once. ``GraphedCall(fn)`` wraps a function of tensors returning a tensor or a dict / tuple of
tensors. On CUDA the first call with a given input signature (shapes, dtypes, strides) warms the function up on a
side stream and captures it; later calls copy the inputs into the captured (static) input tensors and replay.
A new signature (the batch changed, a different input size) captures again and is counted (``recaptures``). When
capture fails (an operation that cannot be captured, out of memory) the call runs eagerly with one warning and
that signature is never tried again (``failures``). On the CPU, or when disabled, it always runs eagerly.

The outputs of a replay are the graph's own tensors: they are overwritten by the next replay, so the caller uses
(or copies) them before calling again. The engine runs one frame at a time, so that holds there.
"""

import logging
import threading

from rcdepth_ros.core.runtime.stats import Counters
import torch

LOGGER = logging.getLogger('rcdepth_ros')
COUNTERS = ('captures', 'recaptures', 'failures', 'replays')


def _signature(tensors):
    return tuple((tuple(t.shape), t.dtype, tuple(t.stride()), str(t.device)) for t in tensors)


class GraphedCall:
    """``fn(*tensors)`` captured as a CUDA graph per input signature (see the module docstring)."""

    def __init__(self, fn, name='forward', enabled=True, warmup=2, grad=False, counters=None):
        """Keep ``fn``; ``grad`` runs it (warm-up, capture) with autograd enabled (Grad-CAM's backward)."""
        self.fn = fn
        self.name = str(name)
        self.enabled = bool(enabled)
        self.warmup = max(int(warmup), 1)
        self.grad = bool(grad)
        self.counters = counters if counters is not None else Counters(COUNTERS)
        self._lock = threading.Lock()
        self._signature = None
        self._graph = None
        self._static = None
        self._outputs = None
        self._failed = set()

    @property
    def captured(self):
        """Return True while a graph is held."""
        return self._graph is not None

    def reset(self):
        """Drop the captured graph and its memory (the next call captures again)."""
        with self._lock:
            self._drop()

    def disable(self):
        """Run eagerly from now on (drops the graph)."""
        with self._lock:
            self.enabled = False
            self._drop()

    def _drop(self):
        had = self._graph is not None
        self._graph = self._static = self._outputs = None
        self._signature = None
        if had and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _eager(self, inputs):
        with torch.enable_grad() if self.grad else torch.inference_mode():
            return self.fn(*inputs)

    def __call__(self, *inputs):
        """Run ``fn`` on ``inputs``: replay the graph of this signature, capture it first, or run eagerly."""
        if not self.enabled or not inputs or inputs[0].device.type != 'cuda':
            return self._eager(inputs)
        signature = _signature(inputs)
        with self._lock:
            if signature in self._failed:
                return self._eager(inputs)
            if signature != self._signature:
                recapture = self._signature is not None
                self._drop()
                if not self._capture(inputs, signature):
                    return self._eager(inputs)
                self.counters.add('captures')
                if recapture:
                    self.counters.add('recaptures')
            for static, value in zip(self._static, inputs):
                static.copy_(value)
            self._graph.replay()
            self.counters.add('replays')
            return self._outputs

    def _capture(self, inputs, signature):
        """Warm up on a side stream and capture; return False (and remember the signature) when that fails."""
        try:
            static = [t.clone() for t in inputs]
            stream = torch.cuda.Stream(device=inputs[0].device)
            stream.wait_stream(torch.cuda.current_stream(inputs[0].device))
            with torch.cuda.stream(stream):
                for _ in range(self.warmup):
                    self._eager(static)
            torch.cuda.current_stream(inputs[0].device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.enable_grad() if self.grad else torch.inference_mode():
                with torch.cuda.graph(graph):
                    outputs = self.fn(*static)
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:   # noqa: B014 - name the OOM case explicitly
            self._failed.add(signature)
            self.counters.add('failures')
            self._graph = self._static = self._outputs = None
            torch.cuda.empty_cache()
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            LOGGER.warning('CUDA graph capture of %s failed (%s): running it eagerly for inputs %s', self.name,
                           text, [tuple(t.shape) for t in inputs])
            return False
        self._graph, self._static, self._outputs, self._signature = graph, static, outputs, signature
        return True
