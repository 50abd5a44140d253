"""
Bundle a trained run as a shipped model: ``python -m training.bundle --run RUN_DIR [--run ...] --out weights/NAME``.

With several ``--run`` the one with the lowest MAE@80 in its last validation during training (the dev frames of
its config, ``summary.json``) is bundled: the choice never looks at the evaluation frames. Copies the run's final
checkpoint with its floating-point tensors stored in float16 (``models.checkpoint``), keeps
its configuration and provenance, and adds the run's evaluation (``RUN_DIR/eval/evaluation.json``, written by the
table) under ``training.evaluation``. ``--license`` and ``--note`` write a markdown note beside it (the data's
licence, how it was trained, its figures), which is what ships a model trained on licensed data.
"""

import argparse
import json
from pathlib import Path
import sys

from rcdepth_ros.errors import CheckpointError, RcdepthError
from rcdepth_ros.models import load_checkpoint, save_checkpoint
from training.evaluate import resolve_model


def final_validation_mae(run, cap='80'):
    """Return the MAE at ``cap`` of a complete run's last validation (its dev frames), from ``summary.json``."""
    path = Path(run) / 'summary.json'
    try:
        summary = json.loads(path.read_text())
        return float(summary['validation'][-1]['metrics']['caps'][cap]['mae'])
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise CheckpointError(f'{run}: no validation MAE@{cap} in {path} (is the run complete, with validation?)')


def pick_run(runs, cap='80'):
    """Return (the run with the lowest final validation MAE at ``cap``, {run: MAE}) of ``runs``."""
    scores = {str(run): final_validation_mae(run, cap) for run in runs}
    return Path(min(scores, key=scores.get)), scores


def bundle(run, out, license_text=None, note=True, picked_from=None):
    """Write ``out``.safetensors / .json (float16) from ``run``'s final checkpoint (and ``out``.md); return paths."""
    run = Path(run)
    model, input_cfg, model_cfg, meta = load_checkpoint(resolve_model(run))
    evaluation_path = run / 'eval' / 'evaluation.json'
    if not evaluation_path.is_file():
        raise CheckpointError(f'{run}: no eval/evaluation.json; evaluate the run first (training.evaluate --out '
                              f'{run}/eval)')
    evaluation = json.loads(evaluation_path.read_text())
    training = dict(meta.get('training') or {})
    training['evaluation'] = {'metrics': evaluation['metrics'], 'evaluation': evaluation['evaluation']}
    training['bundled_from'] = str(run)
    if picked_from:
        training['picked_from'] = {'runs': picked_from, 'by': 'lowest MAE@80 of the last validation (dev frames)'}
    weights = save_checkpoint(out, model, input_cfg, model_cfg, training=training, dtype='float16')
    paths = [weights, weights.with_suffix('.json')]
    if note:
        paths.append(write_note(Path(out).with_suffix('.md'), weights, training, license_text))
    return paths


def write_note(path, weights, training, license_text):
    """Write the weights note: what the model is, how it was trained, its licence and its figures."""
    caps = training['evaluation']['metrics']['caps']
    ev = training['evaluation']['evaluation']
    data = training.get('data') or {}
    size = weights.stat().st_size + weights.with_suffix('.json').stat().st_size
    lines = [f'# {weights.stem}', '',
             f'{training.get("experiment") or weights.stem}: trained with `{training.get("command", "?")}` '
             f'(git {((training.get("git") or {}).get("commit") or "?")[:12]}), seed {training.get("seed")}, '
             f'{training.get("epoch")} epochs; distillation terms {training.get("distill_terms") or "none"}'
             f'{" from teacher " + str(training.get("teacher")) if training.get("teacher") else ""}.',
             f'Training data: {data.get("source")} {data.get("train")}; stored in float16, {size / 2 ** 20:.1f} MiB.',
             '']
    picked = training.get('picked_from')
    if picked:
        lines[-1:-1] = [f'Picked among {len(picked["runs"])} runs by the {picked["by"]}: ' +
                        ', '.join(f'{Path(r).name} {mae:.0f} mm' for r, mae in picked['runs'].items()) + '.']
    if license_text:
        lines += ['## Licence', '', license_text, '']
    lines += ['## Figures', '',
              f'`rcdepth eval --dataset {ev.get("source")} --split {ev.get("split")}` (frames '
              f'{ev.get("frames_selected") or ev.get("split")}, {training["evaluation"]["metrics"]["frames"]} '
              f'frames, {ev.get("resolution", "original")} resolution; the figures below were measured on the '
              f'float32 weights before bundling):', '',
              '| cap | MAE (mm) | RMSE (mm) | AbsRel | delta1 |', '|---|---|---|---|---|']
    for cap, m in caps.items():
        lines.append(f'| {cap} m | {m["mae"]:.0f} | {m["rmse"]:.0f} | {m["absrel"]:.3f} | {m["delta1"]:.3f} |')
    path.write_text('\n'.join(lines) + '\n')
    return path


def main(argv=None):
    """Run the command; return the exit status."""
    parser = argparse.ArgumentParser(prog='python -m training.bundle', description=__doc__.strip().splitlines()[0])
    parser.add_argument('--run', required=True, action='append',
                        help='run directory (its checkpoints/final and eval/); several: the best on its dev frames')
    parser.add_argument('--out', required=True, help='output stem, e.g. weights/xdrcdepth_astyx')
    parser.add_argument('--license', default=None, help='licence text for the note')
    args = parser.parse_args(argv)
    try:
        run, scores = pick_run(args.run) if len(args.run) > 1 else (Path(args.run[0]), None)
        if scores:
            print(f'picked {run} (final validation MAE@80: ' +
                  ', '.join(f'{Path(r).name} {mae:.0f} mm' for r, mae in scores.items()) + ')')
        for path in bundle(run, args.out, args.license, picked_from=scores):
            print(path)
    except (RcdepthError, OSError, KeyError) as exc:
        print(f'training.bundle: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
