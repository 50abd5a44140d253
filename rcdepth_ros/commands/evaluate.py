"""
``rcdepth eval``: evaluate a checkpoint on frames of a data set and print the metrics JSON.

``rcdepth eval --dataset astyx --root DIR --frames 350-435 --model CKPT --out DIR`` runs
``rcdepth_ros.evaluation.datasets.evaluate_model``: the inference engine on the original images, the protocol of
method.md section 4 (per image, then averaged; MAE / RMSE in mm at caps 50, 70, 80 m). stdout gets exactly the
metrics JSON (``{"frames": N, "caps": {...}}``); ``--out DIR`` also writes it to ``DIR/metrics.json`` and the full
record (data, frames, skipped frames, timing, model) to ``DIR/evaluation.json``.
"""

from rcdepth_ros.evaluation.datasets import add_arguments, evaluate_args, report

HELP = 'evaluate a model on a data set and print the metrics JSON'
__all__ = ['add_arguments', 'HELP', 'run']


def run(args):
    """Evaluate, print the metrics JSON, write the files; return 0."""
    report(evaluate_args(args), args.out)
    return 0
