"""Depth heads: bin spacings, distribution statistics, local planar guidance."""

import math

import numpy as np
import pytest
from rcdepth_ros.errors import ConfigError
from rcdepth_ros.models.config import HeadConfig
from rcdepth_ros.models.heads import bin_centers, bin_edges, DepthBinHead, distribution_statistics, \
    local_planar_guidance, PlaneReduction
import torch


@pytest.mark.parametrize('spacing', ['uniform', 'log', 'sid'])
def test_bin_edges_cover_the_range_monotonically(spacing):
    edges = bin_edges(16, spacing, 0.5, 100.0).numpy()
    assert edges.shape == (17,)
    assert edges[0] == pytest.approx(0.5) and edges[-1] == pytest.approx(100.0)
    assert np.all(np.diff(edges) > 0)
    centers = bin_centers(16, spacing, 0.5, 100.0).numpy()
    assert centers.dtype == np.float32 and np.allclose(centers, 0.5 * (edges[1:] + edges[:-1]))


def test_spacings_have_their_defining_property():
    widths = np.diff(bin_edges(10, 'uniform', 1.0, 11.0).numpy())
    assert np.allclose(widths, 1.0)
    ratios = np.diff(np.log(bin_edges(10, 'log', 1.0, 100.0).numpy()))
    assert np.allclose(ratios, math.log(100.0) / 10)
    sid = np.diff(bin_edges(10, 'sid', 0.0 + 1e-9, 110.0).numpy())
    # linear-increasing discretisation: widths grow by a constant step, first width = one step
    assert np.allclose(np.diff(sid), sid[0], rtol=1e-6)
    with pytest.raises(ConfigError):
        bin_edges(10, 'cubic', 1.0, 2.0)
    with pytest.raises(ConfigError):
        bin_edges(1, 'log', 1.0, 2.0)


def test_distribution_statistics_against_numpy():
    centers = torch.tensor([1.0, 2.0, 4.0, 8.0])
    logits = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    depth, std = distribution_statistics(logits, centers)
    p = torch.softmax(logits, 1).numpy()
    c = centers.numpy().reshape(1, 4, 1, 1)
    mean = (p * c).sum(1, keepdims=True)
    assert np.allclose(depth.numpy(), mean, atol=1e-5)
    assert np.allclose(std.numpy(), np.sqrt((p * (c - mean) ** 2).sum(1, keepdims=True)), atol=1e-5)
    # a confident distribution sits on its bin with (almost) no spread
    sharp = torch.full((1, 4, 1, 1), -50.0)
    sharp[0, 2] = 50.0
    depth, std = distribution_statistics(sharp, centers)
    assert float(depth) == pytest.approx(4.0) and float(std) < 1e-4


def test_bin_head_outputs():
    head = DepthBinHead(8, HeadConfig(num_bins=12, spacing='log', min_depth=1.0, max_depth=50.0))
    with torch.no_grad():
        out = head(torch.randn(2, 8, 4, 6))
    assert out['logits'].shape == (2, 12, 4, 6) and out['bin_centers'].shape == (12,)
    assert out['depth'].shape == out['uncertainty'].shape == (2, 1, 4, 6)
    assert float(out['depth'].min()) >= 1.0 and float(out['depth'].max()) <= 50.0
    assert 'bin_centers' not in head.state_dict()   # derived from the config, not stored


def test_local_planar_guidance_fronto_parallel_and_tilted():
    plane = torch.zeros(1, 4, 2, 3)
    plane[:, 2] = 1.0          # normal along the optical axis: constant depth = distance
    plane[:, 3] = 7.0
    depth = local_planar_guidance(plane, 4, 100.0)
    assert depth.shape == (1, 1, 8, 12) and torch.allclose(depth, torch.full_like(depth, 7.0))
    tilted = plane.clone()
    tilted[:, 0] = 0.3         # depth changes along u inside each cell, symmetric about the cell centre
    tilted[:, 2] = math.sqrt(1 - 0.09)
    depth = local_planar_guidance(tilted, 4, 100.0)[0, 0, 0, :4]
    assert torch.all(depth[1:] < depth[:-1])
    u = (torch.arange(4) - 1.5) / 4
    assert torch.allclose(depth, 7.0 / (0.3 * u + math.sqrt(0.91)))


def test_plane_reduction_gives_unit_normals_within_60_degrees():
    with torch.no_grad():
        planes = PlaneReduction(16, 16, 80.0)(torch.randn(2, 16, 3, 3))
    normals, dist = planes[:, :3], planes[:, 3]
    assert torch.allclose(normals.norm(dim=1), torch.ones(2, 3, 3), atol=1e-5)
    assert float(normals[:, 2].min()) >= 0.5 - 1e-6
    assert float(dist.min()) >= 0 and float(dist.max()) <= 80.0
