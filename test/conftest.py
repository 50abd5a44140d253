"""Shared fixtures; also makes a bare ``pytest`` safe for ROS: local discovery, own domain, shm DDS profile."""

import importlib.util
import os
from pathlib import Path
import sys

import pytest

from rcdepth_ros.paths import data_root
from rcdepth_ros.ros_env import configure_ros_environment

# Before any test imports rclpy: keep discovery on this host, give this run its own domain (derived from the pid
# unless the caller set one), load the shared-memory Fast DDS profile.
configure_ros_environment()

try:
    from hypothesis import HealthCheck, settings
    # The machine is small and shared: no per-example deadline, a moderate number of examples.
    settings.register_profile('rcdepth', deadline=None, max_examples=60,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile(os.environ.get('HYPOTHESIS_PROFILE', 'rcdepth'))
except ImportError:  # pragma: no cover - hypothesis is in requirements.txt
    pass


def _require(path, what):
    if not path.exists():
        pytest.skip(f'{what} not found at {path}: set RCDEPTH_DATA to the shared data folder '
                    f'(default ../shared/data beside the checkout)')
    return path


@pytest.fixture(scope='session')
def shared_data():
    """Return the shared data root (``$RCDEPTH_DATA`` or ``../shared/data``); skips when absent."""
    return _require(data_root(), 'shared data folder')


@pytest.fixture(scope='session')
def astyx_root(shared_data):
    """Return Astyx HiRes2019 in its original layout; skips when absent."""
    return _require(shared_data / 'astyx_hires2019' / 'dataset.json', 'Astyx HiRes2019').parent


@pytest.fixture(scope='session')
def nuscenes_pcd_dir(shared_data):
    """Return the folder of the two real nuScenes radar .pcd files; skips when absent."""
    return _require(shared_data / 'nuscenes_radar_pcd', 'nuScenes radar .pcd files')


def load_fixture_builder(name):
    """Import ``test/data/<name>.py`` (a generated-data builder) by path: ``test/`` is not a package."""
    module_name = f'rcdepth_test_{name}'
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, Path(__file__).parent / 'data' / f'{name}.py')
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(scope='session')
def kitti_radar_fixture(tmp_path_factory):
    """Return (root, truth) of a generated data root in View-of-Delft's KITTI-style layout (kitti_radar_fixture.py)."""
    root = tmp_path_factory.mktemp('kitti_radar')
    return root, load_fixture_builder('kitti_radar_fixture').make_kitti_radar_root(root)


@pytest.fixture(scope='session')
def zju_fixture(tmp_path_factory):
    """Return (root, truth) of a generated ZJU-4DRadarCam data root with known depths (test/data/zju_fixture.py)."""
    root = tmp_path_factory.mktemp('zju')
    return root, load_fixture_builder('zju_fixture').make_zju_root(root)


@pytest.fixture(scope='session')
def nuscenes_fixture(tmp_path_factory):
    """Return (root, truth) of a generated nuScenes data root the devkit loads (test/data/nuscenes_fixture.py)."""
    root = tmp_path_factory.mktemp('nuscenes')
    return root, load_fixture_builder('nuscenes_fixture').make_nuscenes_root(root)


# A student small enough for fast tests (64x128 input, about 40k parameters, random init): engine, saliency,
# checkpoint, export and node tests share it.
TINY_STUDENT_CONFIG = {
    'input': {'height': 64, 'width': 128},
    'model': {'architecture': 'student',
              'image_encoder': {'name': 'small_cnn', 'widths': [8, 16, 24, 32, 48]},
              'radar_encoder': {'name': 'small_cnn', 'widths': [4, 8, 8, 16, 16]},
              'decoder': {'widths': [32, 24, 16, 8, 8], 'daspp_bottleneck': 16, 'daspp_growth': 8},
              'head': {'num_bins': 16}},
}


@pytest.fixture
def tiny_student():
    """Return (model, input_cfg, model_cfg): the seeded TINY_STUDENT_CONFIG student in eval mode."""
    from rcdepth_ros.models import build_model, load_model_config
    import torch
    input_cfg, model_cfg = load_model_config(TINY_STUDENT_CONFIG)
    torch.manual_seed(0)
    return build_model(model_cfg, input_cfg).eval(), input_cfg, model_cfg


@pytest.fixture(scope='session')
def fixture_builders():
    """Return ``load_fixture_builder``: tests import the generated-data builders (zju, nuscenes) through it."""
    return load_fixture_builder
