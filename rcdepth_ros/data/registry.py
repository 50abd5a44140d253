"""
Open a data set reader by source name: ``open_reader('astyx', root, split='val')``.

The command line (``--source``, ``--root``, ``--frames``, ``--split``), training and evaluation configs go through
here, so every consumer opens a source the same way. Reader modules are imported only when their source is asked
for (nuScenes pulls in nuscenes-devkit).
"""

import importlib
import inspect

from rcdepth_ros.errors import DatasetError
from rcdepth_ros.paths import data_root

# source name -> (module, reader class, folder under the data root holding the data set; None: needs no files)
SOURCES = {
    'astyx': ('rcdepth_ros.data.astyx', 'AstyxReader', 'astyx_hires2019'),
    'nuscenes': ('rcdepth_ros.data.nuscenes', 'NuScenesReader', 'nuscenes'),
    'zju': ('rcdepth_ros.data.zju', 'ZJUReader', 'ZJU-4DRadarCam'),
    'kitti_radar': ('rcdepth_ros.data.kitti_radar', 'KittiRadarReader', 'view_of_delft_PUBLIC'),
    'synthetic': ('rcdepth_ros.data.synthetic', 'SyntheticReader', None),
    'bag': ('rcdepth_ros.data.bag', 'BagReader', 'bags'),
}


def source_names():
    """Return the names ``open_reader`` accepts."""
    return tuple(SOURCES)


def reader_class(source):
    """Return the reader class of ``source`` (importing its module), or raise DatasetError naming it."""
    if source not in SOURCES:
        raise DatasetError(f'unknown data source {source!r}; choose from {", ".join(SOURCES)}')
    module_name, class_name, _ = SOURCES[source]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DatasetError(f'data source {source!r}: cannot import {module_name} ({exc})') from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise DatasetError(f'data source {source!r}: {module_name} has no {class_name}') from None


def default_root(source):
    """Return where ``source`` lives under the data root (``$RCDEPTH_DATA``), or None if it needs no files."""
    if source not in SOURCES:
        raise DatasetError(f'unknown data source {source!r}; choose from {", ".join(SOURCES)}')
    folder = SOURCES[source][2]
    return None if folder is None else data_root() / folder


def open_reader(source, root=None, split=None, frames=None, **options):
    """
    Return the reader of ``source`` over ``root`` (default: ``default_root(source)``).

    ``split`` names a split the source defines (Astyx 'train' / 'val'; nuScenes 'train' / 'val' / 'test' /
    'mini_train' / ...; ZJU 'train' / 'val' / 'test' / 'full'); ``frames`` then selects within it ('0-349',
    '0-10,20', see ``SampleReader.select``). Other keyword options go to the reader's constructor; an option the
    reader does not take raises DatasetError naming it.
    """
    cls = reader_class(source)
    parameters = inspect.signature(cls.__init__).parameters
    unknown = sorted(k for k in options if k not in parameters)
    if unknown:
        known = sorted(p for p in parameters if p not in ('self', 'root', 'split', 'frames'))
        raise DatasetError(f'data source {source!r}: unknown option(s) {unknown}; known: {known}')
    if SOURCES[source][2] is None:
        if root is not None:
            raise DatasetError(f'data source {source!r} is generated and reads no files: got root={str(root)!r}')
        if split is not None and 'split' not in parameters:
            raise DatasetError(f'data source {source!r} has no splits (got split={split!r})')
        kwargs = dict(options)
        if split is not None:
            kwargs['split'] = split
        reader = cls(**kwargs)
    else:
        reader = cls(default_root(source) if root is None else root, split=split, **options)
    return reader if frames is None else reader.select(frames)
