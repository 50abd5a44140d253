"""
Where a sensor's points go in the camera frame: fixed extrinsics (parameters, a bag's ``/tf_static``) or a bag's TF.

Every provider answers ``lookup(target_frame, target_ns, source_frame, source_ns) -> T_target_from_source`` (4x4),
the shape of tf2's ``lookup_transform_full``, so the node's tf2 source, the parameter source and the offline
evaluator are interchangeable. An unknown frame raises ProjectionError naming it and the frames known.
"""

import numpy as np

from rcdepth_ros.core.geometry.transforms import as_transform, invert_transform
from rcdepth_ros.errors import ProjectionError, RcdepthError


class StaticExtrinsics:
    """
    Fixed mounting transforms ``{frame: T_camera_from_frame}`` of sensors on one camera (no motion compensation).

    ``camera_frame`` names the camera; an empty name accepts whatever frame id the images carry (a node
    configured before it knows the camera's frame name). A lookup between two known sensor frames chains the two.
    """

    def __init__(self, transforms, camera_frame=''):
        """Validate every transform (finite 4x4 rigid, last row 0 0 0 1)."""
        self.camera_frame = str(camera_frame or '')
        self.transforms = {str(frame): as_transform(T, f'extrinsics of frame {frame!r}')
                           for frame, T in dict(transforms).items()}

    def frames(self):
        """Return the sensor frames known (the camera's own excluded)."""
        return sorted(self.transforms)

    def _to_camera(self, frame, camera):
        if frame == camera:
            return np.eye(4)
        if frame in self.transforms:
            return self.transforms[frame]
        raise ProjectionError(f'no extrinsics for frame {frame!r}: known frames {self.frames()} (camera '
                              f'{camera!r})')

    def lookup(self, target_frame, target_ns, source_frame, source_ns):
        """Return ``T_target_from_source``; the stamps are ignored (the transforms are static)."""
        target_frame, source_frame = str(target_frame), str(source_frame)
        if target_frame == source_frame:
            return np.eye(4)
        camera = self.camera_frame or target_frame
        T_camera_from_source = self._to_camera(source_frame, camera)
        if target_frame == camera:
            return T_camera_from_source
        return invert_transform(self._to_camera(target_frame, camera)) @ T_camera_from_source


class TransformBufferExtrinsics:
    """
    Lookups in a bag's ``TransformBuffer`` (``core.bags.tf``): through ``world_frame`` when the bag has ego motion.

    This is what tf2's ``lookup_transform_full(target, t_target, source, t_source, world)`` gives a node that plays
    the bag with TF, so the offline evaluator can reproduce a node that runs with tf2.
    """

    def __init__(self, buffer, world_frame):
        """Wrap ``buffer`` (a TransformBuffer, filled as the bag is read)."""
        self.buffer = buffer
        self.world_frame = str(world_frame)

    def lookup(self, target_frame, target_ns, source_frame, source_ns):
        """Return ``T_target(target_ns)_from_source(source_ns)``."""
        try:
            if self.buffer.has_dynamic() and self.world_frame in self.buffer.frames():
                return self.buffer.lookup_full(target_frame, target_ns, source_frame, source_ns, self.world_frame)
            return self.buffer.lookup(target_frame, source_frame, target_ns)
        except RcdepthError as exc:
            raise ProjectionError(f'no transform from {source_frame!r} to {target_frame!r}: {exc}') from None


def static_extrinsics_from_buffer(buffer, camera_frame):
    """
    Return StaticExtrinsics of every frame the static (``/tf_static``) tree of ``buffer`` connects to the camera.

    Only static edges are followed (a dynamic ``/tf`` parent of the camera, the ego motion, is ignored), so this is
    what a node configured with the mounting transforms as parameters uses.
    """
    static = buffer.static_transforms()

    def to_root(frame):
        T, current = np.eye(4), frame
        for _ in range(64):
            if current not in static:
                return current, T
            parent, T_parent = static[current]
            T, current = T_parent @ T, parent
        raise ProjectionError(f'static transforms: the tree above {frame!r} has a loop')

    camera_root, T_root_from_camera = to_root(camera_frame)
    T_camera_from_root = invert_transform(T_root_from_camera)
    frames = set(static) | {parent for parent, _ in static.values()}
    transforms = {}
    for frame in sorted(frames - {camera_frame}):
        root, T_root_from_frame = to_root(frame)
        if root == camera_root:
            transforms[frame] = T_camera_from_root @ T_root_from_frame
    return StaticExtrinsics(transforms, camera_frame)
