"""The sparse radar image: camera-frame radar returns rasterised into per-channel images the network reads."""

import numpy as np

from rcdepth_ros.core.geometry.projection import as_camera_matrix, nearest_per_pixel, PixelHits, project_points
from rcdepth_ros.errors import ProjectionError


def radar_channel_values(radar_cam, channel):
    """Return the per-return value (N,) of radar image channel ``channel`` for camera-frame returns."""
    if channel == 'depth':
        return radar_cam.xyz[:, 2].astype(np.float32)
    if channel == 'rcs':
        return radar_cam.rcs
    if channel == 'v_radial':
        return radar_cam.v_radial
    if channel in ('vx', 'vy'):
        values = radar_cam.vxy[:, 0 if channel == 'vx' else 1]
        return np.nan_to_num(values, nan=0.0).astype(np.float32)
    if channel == 'mask':
        return np.ones(len(radar_cam), dtype=np.float32)
    raise ProjectionError(f'unknown radar channel {channel!r}')


def radar_image(radar_cam, K, width, height, channels=('depth', 'rcs', 'v_radial', 'mask'), min_depth=1.0,
                max_depth=np.inf, vertical_extension_m=0.0):
    """
    Rasterise camera-frame radar returns into an (H, W, C) float32 image, one channel per name in ``channels``.

    Each return fills its pixel; with ``vertical_extension_m > 0`` it fills a vertical segment of that metric
    height centred on it (``fy * h / z`` pixels), because automotive radar measures elevation poorly. Where
    returns collide, the nearest one wins in every channel. Pixels without a return are 0 (``mask`` says which).
    """
    K = as_camera_matrix(K)
    width, height = int(width), int(height)
    hits = project_points(radar_cam.xyz, K, width, height, min_depth, max_depth)
    u, v, z, src = hits.u, hits.v, hits.z, hits.index
    if vertical_extension_m > 0 and len(hits):
        half = np.maximum(np.floor(0.5 * K[1, 1] * vertical_extension_m / z), 0).astype(np.int64)
        half = np.minimum(half, height)
        counts = 2 * half + 1
        rep = np.repeat(np.arange(len(hits)), counts)
        starts = np.cumsum(counts) - counts
        offsets = np.arange(rep.shape[0]) - np.repeat(starts, counts) - np.repeat(half, counts)
        u, v, z, src = u[rep], v[rep] + offsets, z[rep], src[rep]
        inside = (v >= 0) & (v < height)
        u, v, z, src = u[inside], v[inside], z[inside], src[inside]
    spread = PixelHits(u, v, z, src)
    keep = nearest_per_pixel(spread, width)
    out = np.zeros((height, width, len(channels)), dtype=np.float32)
    rows, cols, chosen = v[keep], u[keep], src[keep]
    for c, name in enumerate(channels):
        out[rows, cols, c] = radar_channel_values(radar_cam, name)[chosen]
    return out
