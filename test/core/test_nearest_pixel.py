"""The z-buffer selection of geometry.nearest_per_pixel against a brute-force reference, ties included."""

from hypothesis import given, strategies as st
import numpy as np

from rcdepth_ros.core.geometry.projection import nearest_per_pixel, PixelHits


def _brute_force(u, v, z, width):
    best = {}
    for i in range(len(z)):
        pixel = int(v[i]) * width + int(u[i])
        if pixel not in best or z[i] < z[best[pixel]]:
            best[pixel] = i                    # strict <: among equal depths the first in input order wins
    return np.array([best[p] for p in sorted(best)], dtype=np.int64)


@given(n=st.integers(0, 200), width=st.integers(1, 6), height=st.integers(1, 5), ties=st.booleans(),
       seed=st.integers(0, 2 ** 32 - 1))
def test_nearest_per_pixel_matches_brute_force(n, width, height, ties, seed):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, width, n)
    v = rng.integers(0, height, n)
    z = rng.choice([1.0, 2.5, 7.0], n) if ties else rng.uniform(1.0, 120.0, n)
    hits = PixelHits(u, v, z, np.arange(n))
    assert np.array_equal(nearest_per_pixel(hits, width), _brute_force(u, v, z, width))


def test_large_image_and_nearly_equal_depths():
    # 900x1600 pixels and depths one float32 ulp apart: the packed-key path must still order them exactly.
    z32 = np.float32(37.5)
    z = np.array([np.nextafter(z32, np.float32(100)), z32, z32 + np.float32(1)], dtype=np.float32)
    u = np.array([1599, 1599, 1599])
    v = np.array([899, 899, 899])
    hits = PixelHits(u, v, z.astype(np.float64), np.arange(3))
    assert nearest_per_pixel(hits, 1600).tolist() == [1]
