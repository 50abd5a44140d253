"""
Procedural texture tiles: periodic smooth noise, white noise and a hash table, all drawn once from a seed.

Shaders sample them with integer lookups (``tile[(y * scale) mod N, (x * scale) mod N]``), which costs a few
array operations per pixel instead of evaluating a noise function.
"""

import numpy as np

TILE = 256
SHIFT = 8                   # log2(TILE)
HASH_SIZE = 4096


def periodic_noise(rng, size, cutoff):
    """Return a (size, size) float32 periodic noise tile in [-1, 1] with spatial frequencies below ``cutoff``."""
    white = rng.standard_normal((size, size))
    f = np.fft.fftfreq(size)
    radius = np.hypot(f[:, None], f[None, :]) * size
    smooth = np.real(np.fft.ifft2(np.fft.fft2(white) * np.exp(-(radius / cutoff) ** 2)))
    smooth /= np.abs(smooth).max() + 1e-12
    return smooth.astype(np.float32)


class TextureBank:
    """The noise tiles of one data set (a function of the seed only)."""

    def __init__(self, seed):
        """Draw the tiles."""
        rng = np.random.default_rng([int(seed), 0x7e47])
        self.coarse = periodic_noise(rng, TILE, 6.0)
        self.medium = periodic_noise(rng, TILE, 24.0)
        self.fine = rng.uniform(-1.0, 1.0, (TILE, TILE)).astype(np.float32)
        self.table = rng.uniform(0.0, 1.0, HASH_SIZE).astype(np.float32)

    @staticmethod
    def sample(tile, x, y, scale):
        """
        Return ``tile`` at world coordinates ``(x, y)`` with ``scale`` texels per metre (nearest texel).

        Coordinates are truncated rather than floored (one texel's shift for negative ones: noise does not care).
        """
        size = tile.shape[0]
        scale = np.float32(scale)
        ix = (np.asarray(x) * scale).astype(np.int32) & (size - 1)
        iy = (np.asarray(y) * scale).astype(np.int32) & (size - 1)
        return np.take(tile.ravel(), (iy << SHIFT) | ix)
