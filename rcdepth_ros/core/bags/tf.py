"""
TF without tf2: TransformStamped <-> 4x4 matrices, and a small buffer that answers lookups from a bag's transforms.

``TransformBuffer`` follows tf2's rules where a bag needs them: each frame has one parent; static transforms hold
at any time; dynamic ones are interpolated between their stamps (translation linearly, rotation by slerp) and
never extrapolated; ``lookup_full`` is ``lookup_transform_full`` (the target at one time, the source at another,
through a fixed frame). Matrices follow the package's convention: ``lookup(a, b)`` is ``T_a_from_b``.
"""

import bisect

import numpy as np

from rcdepth_ros.core.geometry.transforms import (as_transform, invert_transform, quaternion_xyzw_from_matrix,
                                                  transform_from_translation_quaternion)
from rcdepth_ros.core.messages.msgtypes import make_header, stamp_to_ns
from rcdepth_ros.errors import BagError, RcdepthError

_MAX_DEPTH = 64


def transform_stamped(types, T_parent_from_child, parent, child, stamp_ns):
    """Return a rosbags geometry_msgs/TransformStamped: ``child``'s pose in ``parent`` at ``stamp_ns``."""
    T = as_transform(T_parent_from_child, f'transform {parent} -> {child}')
    store = types.typestore
    Vector3, Quaternion = store.types['geometry_msgs/msg/Vector3'], store.types['geometry_msgs/msg/Quaternion']
    Transform = store.types['geometry_msgs/msg/Transform']
    x, y, z, w = (float(v) for v in quaternion_xyzw_from_matrix(T[:3, :3]))
    transform = Transform(translation=Vector3(*(float(v) for v in T[:3, 3])), rotation=Quaternion(x, y, z, w))
    return store.types['geometry_msgs/msg/TransformStamped'](header=make_header(types, stamp_ns, parent),
                                                             child_frame_id=child, transform=transform)


def tf_message(types, transforms):
    """Return a rosbags tf2_msgs/TFMessage holding the TransformStamped messages ``transforms``."""
    return types.typestore.types['tf2_msgs/msg/TFMessage'](transforms=list(transforms))


def transform_to_matrix(msg):
    """Return (parent, child, stamp_ns, T_parent_from_child) of a TransformStamped (either flavour)."""
    parent, child = str(msg.header.frame_id), str(msg.child_frame_id)
    t, q = msg.transform.translation, msg.transform.rotation
    try:
        T = transform_from_translation_quaternion((t.x, t.y, t.z), (q.x, q.y, q.z, q.w))
    except RcdepthError as exc:
        raise BagError(f'transform {parent} -> {child}: {exc}') from None
    return parent, child, stamp_to_ns(msg.header), T


def interpolate_transform(T0, T1, alpha):
    """Return the rigid transform ``alpha`` of the way from ``T0`` to ``T1`` (linear translation, slerp rotation)."""
    q0 = quaternion_xyzw_from_matrix(T0[:3, :3])
    q1 = quaternion_xyzw_from_matrix(T1[:3, :3])
    dot = float(np.dot(q0, q1))
    if dot < 0.0:                       # q and -q are one rotation: take the short way
        q1, dot = -q1, -dot
    if dot > 0.9995:                    # nearly equal: normalised lerp is exact to rounding
        q = q0 + alpha * (q1 - q0)
    else:
        theta = np.arccos(dot)
        q = (np.sin((1.0 - alpha) * theta) * q0 + np.sin(alpha * theta) * q1) / np.sin(theta)
    translation = (1.0 - alpha) * T0[:3, 3] + alpha * T1[:3, 3]
    return transform_from_translation_quaternion(translation, q)


class TransformBuffer:
    """
    The transforms of a bag: static edges (``/tf_static``) and time-stamped dynamic edges (``/tf``).

    ``set_transform(parent, child, T, stamp_ns, static)`` adds an edge; ``lookup(target, source, stamp_ns)`` and
    ``lookup_full(target, target_ns, source, source_ns, fixed)`` chain them. Errors are BagError naming the frames.
    """

    def __init__(self):
        """Start empty."""
        self._static = {}       # child -> (parent, T_parent_from_child)
        self._dynamic = {}      # child -> (parent, sorted stamps, list of T)

    def frames(self):
        """Return every frame the buffer knows, parents and children."""
        names = set(self._static) | set(self._dynamic)
        names.update(p for p, _ in self._static.values())
        names.update(p for p, _, _ in self._dynamic.values())
        return names

    def has_dynamic(self):
        """Return whether any dynamic (``/tf``) transform was added."""
        return bool(self._dynamic)

    def static_transforms(self):
        """Return ``{child: (parent, T_parent_from_child)}`` of the static transforms (a copy)."""
        return {child: (parent, T.copy()) for child, (parent, T) in self._static.items()}

    def set_transform(self, parent, child, T_parent_from_child, stamp_ns=0, static=False):
        """
        Add the edge ``parent -> child``; a static edge replaces an earlier static one of ``child``.

        A frame with two different parents, or with both a static and a dynamic parent, raises BagError (tf2
        would flip between them).
        """
        parent, child = str(parent), str(child)
        if not parent or not child or parent == child:
            raise BagError(f'transform {parent!r} -> {child!r}: frames must be two different non-empty names')
        T = as_transform(T_parent_from_child, f'transform {parent} -> {child}')
        other = self._dynamic if static else self._static
        if child in other:
            raise BagError(f'frame {child!r} has a {"dynamic" if static else "static"} parent '
                           f'{other[child][0]!r} already; it cannot also be {"static" if static else "dynamic"}')
        if static:
            self._static[child] = (parent, T)
            return
        known_parent, stamps, matrices = self._dynamic.setdefault(child, (parent, [], []))
        if known_parent != parent:
            raise BagError(f'frame {child!r} has parent {known_parent!r} already; a transform from {parent!r} '
                           f'cannot be added')
        stamp_ns = int(stamp_ns)
        position = bisect.bisect_left(stamps, stamp_ns)
        if position < len(stamps) and stamps[position] == stamp_ns:
            matrices[position] = T
        else:
            stamps.insert(position, stamp_ns)
            matrices.insert(position, T)

    def add_message(self, tf_msg, static):
        """Add every TransformStamped of a TFMessage (either flavour)."""
        for transform in tf_msg.transforms:
            parent, child, stamp_ns, T = transform_to_matrix(transform)
            self.set_transform(parent, child, T, stamp_ns, static)

    def _edge(self, child, stamp_ns):
        if child in self._static:
            return self._static[child]
        parent, stamps, matrices = self._dynamic[child]
        if stamp_ns is None:
            raise BagError(f'transform {parent} -> {child} is dynamic (/tf): a lookup needs a time')
        position = bisect.bisect_left(stamps, stamp_ns)
        if position < len(stamps) and stamps[position] == stamp_ns:
            return parent, matrices[position]
        if position == 0 or position == len(stamps):
            raise BagError(f'transform {parent} -> {child}: no data at {stamp_ns} ns, which is outside '
                           f'[{stamps[0]}, {stamps[-1]}] ns (tf2 does not extrapolate)')
        t0, t1 = stamps[position - 1], stamps[position]
        alpha = (stamp_ns - t0) / (t1 - t0)
        return parent, interpolate_transform(matrices[position - 1], matrices[position], alpha)

    def _to_root(self, frame, stamp_ns):
        """Return (root frame, T_root_from_frame)."""
        T = np.eye(4)
        current = frame
        for _ in range(_MAX_DEPTH):
            if current not in self._static and current not in self._dynamic:
                return current, T
            parent, T_parent = self._edge(current, stamp_ns)
            T = T_parent @ T
            current = parent
        raise BagError(f'frame {frame!r}: the transform tree has a loop or is deeper than {_MAX_DEPTH}')

    def root(self, frame, stamp_ns=None):
        """Return the root of ``frame``'s tree at ``stamp_ns`` (``frame`` itself when it has no parent)."""
        return self._to_root(str(frame), stamp_ns)[0]

    def lookup(self, target, source, stamp_ns=None):
        """Return ``T_target_from_source`` at ``stamp_ns`` (static-only chains need no time)."""
        target, source = str(target), str(source)
        if target == source:
            return np.eye(4)
        root_source, T_root_from_source = self._to_root(source, stamp_ns)
        root_target, T_root_from_target = self._to_root(target, stamp_ns)
        if root_source != root_target:
            raise BagError(f'no transform from {source!r} to {target!r}: they are in unconnected trees (roots '
                           f'{root_source!r} and {root_target!r}; known frames {sorted(self.frames())})')
        return invert_transform(T_root_from_target) @ T_root_from_source

    def lookup_full(self, target, target_ns, source, source_ns, fixed):
        """Return ``T_target(target_ns)_from_source(source_ns)`` through ``fixed`` (tf2's lookup_transform_full)."""
        return self.lookup(target, fixed, target_ns) @ self.lookup(fixed, source, source_ns)
