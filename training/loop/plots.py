"""
PNG figures of a run (matplotlib, imported lazily, Agg backend): loss and validation curves, sample predictions.

``plots/curves.png``: training loss (total and each term) against the step, validation MAE / RMSE against the
epoch. ``plots/samples_epoch<NNN>.png``: per validation frame the image, the radar input, the lidar GT, the
prediction and the absolute error at the GT pixels.
"""

from pathlib import Path

import numpy as np


def _pyplot():
    # matplotlib is slow to import: only when plots are drawn
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _floats(rows, key):
    values = []
    for row in rows:
        try:
            values.append(float(row[key]))
        except (KeyError, TypeError, ValueError):
            values.append(np.nan)
    return np.asarray(values)


def plot_curves(train_rows, val_rows, path, cap='80'):
    """Write the loss and validation curves; return the path."""
    plt = _pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4), constrained_layout=True)
    if train_rows:
        steps = _floats(train_rows, 'step')
        skip = {'step', 'epoch', 'lr', 'seconds_per_step'}
        for key in train_rows[0]:
            if key not in skip:
                left.plot(steps, _floats(train_rows, key), label=key, linewidth=1.5 if key == 'loss' else 0.8)
        left.set_yscale('log')
        left.legend(fontsize=7)
    left.set_xlabel('step')
    left.set_title('training loss')
    if val_rows:
        epochs = _floats(val_rows, 'epoch')
        for metric in ('mae', 'rmse'):
            right.plot(epochs, _floats(val_rows, f'{metric}@{cap}') / 1000.0, marker='o', label=f'{metric} @ {cap} m')
        right.legend(fontsize=7)
    right.set_xlabel('epoch')
    right.set_ylabel('m')
    right.set_title('validation (model resolution)')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return Path(path)


def denormalise_image(image, input_cfg):
    """Return an (H, W, 3) float RGB in [0, 1] from a normalised (3, H, W) array."""
    mean = np.asarray(input_cfg.image_mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(input_cfg.image_std, dtype=np.float32).reshape(3, 1, 1)
    return np.clip(np.asarray(image) * std + mean, 0.0, 1.0).transpose(1, 2, 0)


def plot_samples(images, radar_depth, gt, pred, path, input_cfg, max_depth=80.0, frame_ids=None):
    """Write one row per frame: image, radar depth, lidar GT, prediction, |error| at GT pixels; return the path."""
    plt = _pyplot()
    count = len(images)
    fig, axes = plt.subplots(count, 5, figsize=(20, 2.2 * count + 0.4), squeeze=False, constrained_layout=True)
    for i in range(count):
        valid = gt[i] > 0
        error = np.where(valid, np.abs(pred[i] - gt[i]), np.nan)
        panels = [(denormalise_image(images[i], input_cfg), None, 'image'),
                  (np.where(radar_depth[i] > 0, radar_depth[i], np.nan), 'turbo', 'radar depth'),
                  (np.where(valid, gt[i], np.nan), 'turbo', 'lidar GT'),
                  (pred[i], 'turbo', 'prediction'),
                  (error, 'magma', 'abs error')]
        for ax, (data, cmap, title) in zip(axes[i], panels):
            if cmap is None:
                ax.imshow(data)
            else:
                vmax = 10.0 if title == 'abs error' else max_depth
                ax.imshow(data, cmap=cmap, vmin=0.0, vmax=vmax, interpolation='nearest')
            label = title if frame_ids is None else f'{title} ({frame_ids[i]})' if title == 'image' else title
            ax.set_title(label, fontsize=8)
            ax.axis('off')
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return Path(path)
