"""
A contact sheet of frames: one row per frame, panels image | projected radar | depth | saliency | error.

Every panel is drawn at one common width and labelled; sparse maps (radar, error on lidar pixels) are grown a few
pixels so they can be seen. Depth-like panels share one colour range (near = warm), the error panel shows
``|depth - lidar|`` in metres. Missing panels (saliency not computed) are drawn grey with a note.
"""

import dataclasses
import typing

import cv2
import numpy as np

from rcdepth_ros.core.pictures.colour import colorize, dilate_sparse

PANELS = ('image', 'projected radar', 'depth', 'saliency', 'error |depth - lidar|')


@dataclasses.dataclass
class SheetRow:
    """The pictures of one frame: RGB image, radar depth (any size, 0 = none), depth, saliency, ground truth."""

    label: str
    rgb: np.ndarray
    radar_depth: typing.Optional[np.ndarray]
    depth: typing.Optional[np.ndarray]
    saliency: typing.Optional[np.ndarray]
    gt: typing.Optional[np.ndarray]
    radar_transform: typing.Any = None      # geometry.ImageTransform of the model input, to place radar_depth


def sparse_to_original(sparse, transform):
    """
    Return a model-resolution sparse map (0 = none) drawn at the original image size through ``transform``.

    Each valid pixel goes to the original pixel whose centre it came from (the inverse of the input transform's
    scale and crop); nothing is interpolated, the nearest depth wins.
    """
    sparse = np.asarray(sparse, dtype=np.float32)
    v, u = np.nonzero(sparse > 0)
    z = sparse[v, u]
    sx = transform.out_width / transform.in_width
    sy = transform.scaled_height / transform.in_height
    uo = np.floor((u + 0.5) / sx - 0.5 + 0.5).astype(np.int64)
    vo = np.floor((v + transform.offset_top + 0.5) / sy - 0.5 + 0.5).astype(np.int64)
    inside = (uo >= 0) & (uo < transform.in_width) & (vo >= 0) & (vo < transform.in_height)
    out = np.zeros((transform.in_height, transform.in_width), np.float32)
    order = np.argsort(-z[inside])                   # far first, so the nearest is written last
    out[vo[inside][order], uo[inside][order]] = z[inside][order]
    return out


def _fit(picture, width, height):
    return cv2.resize(picture, (width, height), interpolation=cv2.INTER_NEAREST)


def _caption(picture, text):
    out = picture.copy()
    cv2.rectangle(out, (0, 0), (out.shape[1], 18), (0, 0, 0), thickness=-1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def _blank(width, height, note):
    return _caption(np.full((height, width, 3), 64, np.uint8), note)


def error_map(depth, gt):
    """Return ``|depth - gt|`` where the ground truth is valid and the depth finite, 0 elsewhere."""
    depth = np.asarray(depth, dtype=np.float32)
    gt = np.asarray(gt, dtype=np.float32)
    with np.errstate(invalid='ignore'):
        valid = (gt > 0) & np.isfinite(depth)
    return np.where(valid, np.abs(np.nan_to_num(depth) - gt), 0.0).astype(np.float32)


def render_row(row, width=320, max_depth=80.0, max_error=10.0):
    """Return the (h, 5 * width, 3) BGR strip of one SheetRow."""
    height = int(round(row.rgb.shape[0] * width / row.rgb.shape[1]))
    size = (row.rgb.shape[1], row.rgb.shape[0])
    panels = [_caption(_fit(np.ascontiguousarray(row.rgb[:, :, ::-1]), width, height), f'{row.label}  image')]
    if row.radar_depth is not None:
        if row.radar_transform is not None:
            radar = dilate_sparse(sparse_to_original(row.radar_depth, row.radar_transform), 2)
        else:
            radar = cv2.resize(dilate_sparse(row.radar_depth, 1), size, interpolation=cv2.INTER_NEAREST)
        panels.append(_caption(_fit(colorize(radar, 0.0, max_depth, invert=True), width, height),
                               f'projected radar ({int((row.radar_depth > 0).sum())} px, coloured as depth)'))
    else:
        panels.append(_blank(width, height, 'projected radar: not received'))
    if row.depth is not None:
        panels.append(_caption(_fit(colorize(row.depth, 0.0, max_depth, invert=True), width, height),
                               f'depth 0-{max_depth:.0f} m (red near, blue far)'))
    else:
        panels.append(_blank(width, height, 'depth: not received'))
    if row.saliency is not None:
        panels.append(_caption(_fit(colorize(row.saliency, 0.0, 1.0, 'inferno', zero_invalid=False), width,
                                    height), 'saliency (Grad-CAM)'))
    else:
        panels.append(_blank(width, height, 'saliency: not computed'))
    if row.depth is not None and row.gt is not None:
        error = error_map(row.depth, row.gt)
        valid = error[row.gt > 0]
        text = f'error 0-{max_error:.0f} m, mean {valid.mean():.2f} m' if valid.size else 'error: no lidar'
        panels.append(_caption(_fit(colorize(dilate_sparse(error, 1), 0.0, max_error, zero_invalid=True), width,
                                    height), text))
    else:
        panels.append(_blank(width, height, 'error: no depth or lidar'))
    return np.concatenate(panels, axis=1)


def render_sheet(rows, width=320, max_depth=80.0, max_error=10.0):
    """Return the BGR contact sheet (rows stacked, 2 px gaps) of SheetRows; ValueError for no rows."""
    rows = list(rows)
    if not rows:
        raise ValueError('contact sheet: no frames to draw')
    strips = [render_row(r, width, max_depth, max_error) for r in rows]
    gap = np.zeros((2, strips[0].shape[1], 3), np.uint8)
    out = [strips[0]]
    for strip in strips[1:]:
        out.extend([gap, strip])
    return np.concatenate(out, axis=0)


def write_sheet(path, rows, **kwargs):
    """Render and write the contact sheet PNG; return its (height, width)."""
    sheet = render_sheet(rows, **kwargs)
    if not cv2.imwrite(str(path), sheet):
        raise OSError(f'cannot write the contact sheet {path}')
    return sheet.shape[:2]
