"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/objects/object.py``: a named pose (4x4 matrix) in the world.

Every pose accessor goes through ``get_matrix``/``set_matrix``, so a subclass that keeps its pose elsewhere (the
fake tasks' cube, ``shape.py``) overrides those two. ``get_objects_in_tree`` walks the world's parent table
(``sim.World.parents``, by name); the real one asks CoppeliaSim's ``simGetObjectsInTree``.
"""

from __future__ import annotations

import numpy as np

from pyrep.backend import sim
from pyrep.const import ObjectType


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = np.asarray(q, dtype=np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """xyzw of a rotation matrix (Shepperd's method, the largest diagonal pivot)."""
    t = np.trace(m)
    if t > 0:
        s = 2 * np.sqrt(t + 1)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, s / 4]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2 * np.sqrt(1 + m[i, i] - m[j, j] - m[k, k])
        q = [0.0, 0.0, 0.0, (m[k, j] - m[j, k]) / s]
        q[i], q[j], q[k] = s / 4, (m[j, i] + m[i, j]) / s, (m[k, i] + m[i, k]) / s
    q = np.asarray(q)
    return q if q[3] >= 0 else -q


class Object:
    def __init__(self, name_or_handle: str | int) -> None:
        self._name = str(name_or_handle)
        self._matrix = np.eye(4)
        self._exists = True

    @staticmethod
    def exists(name: str) -> bool:
        return name in sim.world().objects

    def _get_requested_type(self) -> ObjectType:
        raise NotImplementedError("Must be overridden.")

    def get_type(self) -> ObjectType:
        return self._get_requested_type()

    def get_name(self) -> str:
        return self._name

    def still_exists(self) -> bool:
        return self._exists

    def remove(self) -> None:
        self._exists = False

    def get_matrix(self, relative_to=None) -> np.ndarray:
        return self._matrix.copy()

    def set_matrix(self, matrix: np.ndarray, relative_to=None) -> None:
        self._matrix = np.asarray(matrix, dtype=np.float64).reshape(4, 4).copy()

    def get_position(self, relative_to=None) -> np.ndarray:
        return self.get_matrix()[:3, 3]

    def set_position(self, position, relative_to=None) -> None:
        m = self.get_matrix()
        m[:3, 3] = position
        self.set_matrix(m)

    def get_quaternion(self, relative_to=None) -> np.ndarray:
        """xyzw, as the real one."""
        return _matrix_to_quat(self.get_matrix()[:3, :3])

    def set_quaternion(self, quaternion, relative_to=None, reset_dynamics: bool = True) -> None:
        m = self.get_matrix()
        m[:3, :3] = _quat_to_matrix(quaternion)
        self.set_matrix(m)

    def get_pose(self, relative_to=None) -> np.ndarray:
        return np.concatenate([self.get_position(), self.get_quaternion()])

    def set_pose(self, pose, relative_to=None) -> None:
        pose = np.asarray(pose, dtype=np.float64)
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = _quat_to_matrix(pose[3:]), pose[:3]
        self.set_matrix(m)

    def get_objects_in_tree(self, object_type: ObjectType = ObjectType.ALL, exclude_base: bool = True,
                            first_generation_only: bool = False) -> list[Object]:
        """The world's objects under this one (the real method forwards ``*args, **kwargs`` to
        ``_get_objects_in_tree(root_object, object_type=ObjectType.ALL, exclude_base=True,
        first_generation_only=False)``)."""
        w = sim.world()
        found = [] if exclude_base else [self]
        for name, obj in w.objects.items():
            parent = w.parents.get(name)
            while not first_generation_only and parent is not None and parent != self._name:
                parent = w.parents.get(parent)
            if parent == self._name:
                found.append(obj)
        return [o for o in found if object_type == ObjectType.ALL or o.get_type() == object_type]
