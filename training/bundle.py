"""
Bundle a trained run as a shipped model: ``python -m training.bundle --run RUN_DIR --out weights/NAME [--note]``.

Copies the run's final checkpoint with its floating-point tensors stored in float16 (``models.checkpoint``), keeps
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


def bundle(run, out, license_text=None, note=True):
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
    parser.add_argument('--run', required=True, help='run directory (its checkpoints/final and eval/)')
    parser.add_argument('--out', required=True, help='output stem, e.g. weights/xdrcdepth_astyx')
    parser.add_argument('--license', default=None, help='licence text for the note')
    args = parser.parse_args(argv)
    try:
        for path in bundle(args.run, args.out, args.license):
            print(path)
    except (RcdepthError, OSError, KeyError) as exc:
        print(f'training.bundle: error: {exc}', file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
