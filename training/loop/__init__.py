"""
The training loop and its parts, one job per module.

``optim`` (AdamW, polynomial decay), ``state`` (atomic resume state, RNG capture), ``data`` (readers, datasets,
the resumable per-epoch batch order), ``distributed`` (torchrun / DDP set-up), ``logs`` (CSV, TensorBoard, progress),
``plots`` (PNG curves and sample predictions), ``validate`` (fast validation at model resolution), ``provenance``
(command, git commit) and ``trainer`` (the loop itself).
"""
