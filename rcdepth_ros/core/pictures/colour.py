"""
Colour pictures of depth-like maps for people: the node's ``~/debug/depth_color`` and the demo's contact sheet.

Never published on a depth topic: a colourised image is for RViz / Foxglove, the numbers stay on ``depth/image``.
Invalid pixels (NaN, inf, and 0 where ``zero_invalid``) are drawn black.
"""

import cv2
import numpy as np

COLORMAPS = {'turbo': cv2.COLORMAP_TURBO, 'jet': cv2.COLORMAP_JET, 'inferno': cv2.COLORMAP_INFERNO,
             'viridis': cv2.COLORMAP_VIRIDIS, 'magma': cv2.COLORMAP_MAGMA, 'gray': None}


def colorize(values, low, high, colormap='turbo', zero_invalid=True, invert=False):
    """
    Return an (H, W, 3) uint8 BGR picture of an (H, W) map scaled linearly from ``low`` (0) to ``high`` (255).

    ``invert`` maps ``low`` to the top of the colour map instead (near = warm for depth with turbo). Raises
    ValueError for an unknown colour map or ``high <= low``.
    """
    if colormap not in COLORMAPS:
        raise ValueError(f'colour map {colormap!r} unknown; choose from {sorted(COLORMAPS)}')
    if not high > low:
        raise ValueError(f'colour range needs high > low, got [{low}, {high}]')
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim != 2:
        raise ValueError(f'colorize: expected an (H, W) map, got shape {values.shape}')
    with np.errstate(invalid='ignore'):
        valid = np.isfinite(values)
        if zero_invalid:
            valid &= values != 0
        scaled = np.clip((values - low) / (high - low), 0.0, 1.0)
    if invert:
        scaled = 1.0 - scaled
    grey = np.where(valid, scaled * 255.0 + 0.5, 0.0).astype(np.uint8)
    if COLORMAPS[colormap] is None:
        picture = np.repeat(grey[:, :, None], 3, axis=2)
    else:
        picture = cv2.applyColorMap(grey, COLORMAPS[colormap])
    picture[~valid] = 0
    return picture


def dilate_sparse(values, radius=1):
    """Return a sparse map (0 = none) with every valid pixel grown to a (2r+1)^2 square, nearest value winning."""
    values = np.asarray(values, dtype=np.float32)
    if radius <= 0:
        return values.copy()
    # Grow by taking the minimum positive depth in the neighbourhood: invert so that 0 (none) never wins.
    with np.errstate(divide='ignore'):
        inverse = np.where(values > 0, 1.0 / np.where(values > 0, values, 1.0), 0.0).astype(np.float32)
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    grown = cv2.dilate(inverse, kernel)
    with np.errstate(divide='ignore'):
        return np.where(grown > 0, 1.0 / np.where(grown > 0, grown, 1.0), 0.0).astype(np.float32)
