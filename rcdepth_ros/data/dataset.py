"""
The torch Dataset for training and evaluation: any reader -> model-resolution tensors.

Per frame, two stages:

1. the base (expensive, cacheable): the reader's Sample; the image scaled to the model width with
   ``ImageTransform.fit_width`` (all rows kept, the same ``cv2.resize`` the inference path uses), K scaled alike;
   radar and lidar points in the camera frame; ground-truth depth images at that resolution (sparse GT only when
   the source has no lidar points, resampled with ``resize_sparse_depth``; dense GT with nearest
   neighbour, never blending depths).
2. the item (cheap, every time): optional augmentation (``data.augment``), then ``prepare_model_input``,
   the function the inference engine calls, on the (possibly cropped / flipped) scaled image, so training and
   inference preprocessing cannot drift. Sparse GT at model resolution: the lidar points projected with the
   model-input K (``sparse_depth_image``), or the GT image resampled when there are no points.

An item is a dict: ``image`` (3, H, W) normalised, ``radar`` (C, H, W) scaled, ``radar_raw`` (C, H, W) unscaled,
``depth_gt`` (1, H, W) sparse lidar depth (0 = none), ``depth_gt_dense`` (1, H, W) (zeros where the source has
none) with ``has_dense`` (bool), ``K`` (3, 3) at model resolution, ``flipped`` (bool), ``frame_id``, ``source``,
``index``. Without augmentation an item equals what ``prepare_model_input`` gives for the original image
(``prepare_model_input`` on the scaled image is an exact copy step: same size, no resampling).

With ``lidar_rings`` (the rings a lidar-input teacher reads, ``model.lidar_input``) an item also has ``lidar``
(2, H, W): the depth of those rings' points divided by ``lidar_depth_scale`` and their mask (with
``lidar_prior_radius``, two more: those rings filled between them, ``densify.fill_between_rings``, and where that
fill is defined), and
``depth_gt_heldout`` (1, H, W): the depth of the other rings' points only, the teacher's supervision (a teacher
that were supervised on its own input would learn to copy it). With ``aligned_maps`` (offline teacher targets,
``training.targets``) each of its maps, stored aligned with the uncropped base, is cut, mirrored and resized
exactly as the item's image was (``augment.follow_view``) and added under its name as (C, H, W).

Indices may be ``(epoch, index)`` pairs: the augmentation draws then follow that epoch, so persistent DataLoader
workers (which keep their own copy of the dataset) need no ``set_epoch`` (``training.loop.data``).
"""

import copy

import cv2
import numpy as np

from rcdepth_ros.core.geometry.model_input import ImageTransform, prepare_model_input, resize_sparse_depth
from rcdepth_ros.core.geometry.projection import sparse_depth_image
from rcdepth_ros.core.sensor_types import RadarPoints
from rcdepth_ros.data.augment import augment_view, follow_view, rng_for, View
from rcdepth_ros.data.densify import fill_between_rings
from rcdepth_ros.errors import DatasetError
import torch


def build_base(sample, width):
    """Return the cacheable arrays of a Sample for model input width ``width`` (a dict of numpy arrays)."""
    transform = ImageTransform.fit_width(sample.height, sample.width, 1, width, crop='top')
    full = ImageTransform(transform.in_height, transform.in_width, transform.scaled_height,
                          transform.out_width, transform.scale, transform.scaled_height, 0)
    base = {
        'image': full.apply(sample.image),
        'K': full.intrinsics(sample.intrinsics.K),
        'radar_xyz': sample.radar.xyz.astype(np.float32),
        'radar_rcs': sample.radar.rcs,
        'radar_v_radial': sample.radar.v_radial,
        'radar_vxy': sample.radar.vxy,
    }
    if sample.lidar_xyz is not None:
        base['lidar_xyz'] = np.asarray(sample.lidar_xyz, dtype=np.float32).reshape(-1, 3)
        if sample.lidar_ring is not None:
            base['lidar_ring'] = np.asarray(sample.lidar_ring, dtype=np.int16).reshape(-1)
    else:
        base['depth'] = resize_sparse_depth(sample.depth_gt, full)
    if sample.depth_gt_dense is not None:
        base['dense'] = full.apply(np.asarray(sample.depth_gt_dense, dtype=np.float32), cv2.INTER_NEAREST)
    return base


def view_from_base(base):
    """Return the augmentable View of a base."""
    radar = RadarPoints(base['radar_xyz'], base['radar_rcs'], base['radar_v_radial'], base['radar_vxy'])
    return View(image=base['image'], K=np.asarray(base['K'], dtype=np.float64), radar=radar,
                lidar_xyz=base.get('lidar_xyz'), depth=base.get('depth'), dense=base.get('dense'),
                lidar_ring=base.get('lidar_ring'))


INTERPOLATIONS = {'linear': cv2.INTER_LINEAR, 'nearest': cv2.INTER_NEAREST}


class RadarCameraDataset:
    """
    ``torch.utils.data.Dataset`` over a reader (any ``SampleReader``) for one ``InputConfig``.

    ``augment`` is an ``AugmentConfig`` (None: no augmentation); ``cache`` a ``PreprocessCache`` (None: rebuild the
    base every time). ``set_epoch(n)`` changes the augmentation draws per epoch; they depend only on (seed, epoch,
    index), never on the worker. ``lidar_rings`` / ``lidar_depth_scale`` and ``aligned_maps``: see the module
    docstring (``aligned_maps.load(frame_id)`` returns ``{name: ((Hb, Wb, C) float32 array, 'linear' | 'nearest')}``
    aligned with the base image).
    """

    def __init__(self, reader, input_cfg, augment=None, cache=None, lidar_rings=None, lidar_depth_scale=100.0,
                 aligned_maps=None, lidar_prior_radius=None):
        """Keep the reader, the input configuration, the augmentation, the cache and the optional extras."""
        if getattr(reader, 'radar_image', False):
            # The full-resolution radar image of a Sample costs about 14 ms on an Astyx frame and the model input
            # rasterises its own at model resolution: read with a copy that skips it.
            reader = copy.copy(reader)
            reader.radar_image = False
        self.reader = reader
        self.input_cfg = input_cfg
        self.augment = augment
        self.cache = cache
        self.epoch = 0
        self.frame_ids = reader.frame_ids
        self.lidar_rings = None if lidar_rings is None else np.asarray(sorted({int(r) for r in lidar_rings}))
        self.lidar_depth_scale = float(lidar_depth_scale)
        self.lidar_prior_radius = lidar_prior_radius
        self.aligned_maps = aligned_maps

    def __len__(self):
        """Return the number of frames."""
        return len(self.frame_ids)

    def set_epoch(self, epoch):
        """Select the augmentation draws of ``epoch``."""
        self.epoch = int(epoch)

    def base(self, index):
        """Return the base arrays of item ``index`` (from the cache when it holds them)."""
        frame_id = self.frame_ids[index]
        key = None
        if self.cache is not None:
            key = self.cache.key(self.reader, frame_id, self.input_cfg.width)
            cached = self.cache.load(self.reader.source, key)
            if cached is not None:
                return cached
        base = build_base(self.reader.sample(frame_id), self.input_cfg.width)
        if self.cache is not None:
            self.cache.store(self.reader.source, key, base)
        return base

    def __getitem__(self, index):
        """Return the tensors of item ``index`` or ``(epoch, index)`` (see the module docstring)."""
        epoch = self.epoch
        if isinstance(index, (tuple, list)):
            epoch, index = index
        if not -len(self) <= index < len(self):
            raise DatasetError(f'{self.reader.source} dataset: index {index} out of range for {len(self)} frames')
        index = int(index) % len(self)
        view = view_from_base(self.base(index))
        if self.augment is not None:
            view = augment_view(view, self.augment, self.input_cfg.height, self.input_cfg.width,
                                rng_for(self.augment.seed, epoch, index))
        arrays = self.model_arrays(view)
        if self.lidar_rings is not None:
            arrays.update(self.lidar_arrays(view, self.frame_ids[index]))
        if self.aligned_maps is not None:
            arrays.update(self.follow_maps(view, self.frame_ids[index]))
        item = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in arrays.items()}
        item['has_dense'] = torch.tensor(view.dense is not None)
        item['flipped'] = torch.tensor(view.flipped)
        item['frame_id'] = self.frame_ids[index]
        item['source'] = self.reader.source
        item['index'] = index
        return item

    def _transform(self, view):
        cfg = self.input_cfg
        return ImageTransform.fit_width(view.image.shape[0], view.image.shape[1], cfg.height, cfg.width,
                                        cfg.crop)

    def lidar_arrays(self, view, frame_id):
        """Return ``lidar`` (2, H, W) from the input rings and ``depth_gt_heldout`` (1, H, W) from the others."""
        cfg = self.input_cfg
        K = self._transform(view).intrinsics(view.K)      # the model-input K, as for depth_gt
        if view.lidar_xyz is None or view.lidar_ring is None:
            raise DatasetError(f'{self.reader.source} frame {frame_id}: no lidar rings (a teacher with lidar input '
                               f'reads some rings and is supervised on the others; this source has no ring ids)')
        chosen = np.isin(view.lidar_ring, self.lidar_rings)
        given = sparse_depth_image(view.lidar_xyz[chosen], K, cfg.width, cfg.height)
        held = sparse_depth_image(view.lidar_xyz[~chosen], K, cfg.width, cfg.height)
        channels = [given / self.lidar_depth_scale, (given > 0).astype(np.float32)]
        if self.lidar_prior_radius is not None:
            filled, inside = fill_between_rings(given, self.lidar_prior_radius)
            channels += [filled / self.lidar_depth_scale, inside.astype(np.float32)]
        lidar = np.stack(channels).astype(np.float32)
        return {'lidar': lidar, 'depth_gt_heldout': held[None].astype(np.float32)}

    def follow_maps(self, view, frame_id):
        """Return the aligned maps of a frame cut, mirrored and resized like the view's image, as (C, H, W)."""
        cfg = self.input_cfg
        transform = self._transform(view)
        out = {}
        for name, (array, interpolation) in self.aligned_maps.load(frame_id).items():
            flag = INTERPOLATIONS[interpolation]
            resized = follow_view(array, view, lambda a: transform.apply(a, flag))
            out[name] = np.ascontiguousarray(resized.reshape(cfg.height, cfg.width, -1).transpose(2, 0, 1))
        return out

    def model_arrays(self, view):
        """Return the numpy arrays of a view at model resolution (prepare_model_input + ground truth)."""
        cfg = self.input_cfg
        model_input = prepare_model_input(view.image, view.radar, view.K, cfg)
        if view.lidar_xyz is not None:
            depth = sparse_depth_image(view.lidar_xyz, model_input.K, cfg.width, cfg.height)
        else:
            depth = resize_sparse_depth(view.depth, model_input.transform)
        if view.dense is not None:
            dense = model_input.transform.apply(view.dense, cv2.INTER_NEAREST)
        else:
            dense = np.zeros((cfg.height, cfg.width), np.float32)
        return {
            'image': model_input.image,
            'radar': model_input.radar,
            'radar_raw': model_input.radar_raw.transpose(2, 0, 1),
            'depth_gt': depth[None].astype(np.float32),
            'depth_gt_dense': dense[None].astype(np.float32),
            'K': model_input.K.astype(np.float32),
        }
