"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/objects/shape.py``: ``Shape(name_or_handle)``, of type
``ObjectType.SHAPE``.

A shape named like one of the world's cubes (``sim.World.cubes``, key ``"name"``) *is* that cube: its position is the
cube's centre and its rotation the cube's ``"quat"`` (xyzw), so moving the shape moves what the cameras see (the
ray-caster draws cubes axis-aligned whatever their rotation).
"""

from __future__ import annotations

import numpy as np

from pyrep.backend import sim
from pyrep.const import ObjectType
from pyrep.objects.object import Object, _matrix_to_quat, _quat_to_matrix


class Shape(Object):
    def _get_requested_type(self) -> ObjectType:
        return ObjectType.SHAPE

    def _cube(self) -> dict | None:
        return next((c for c in sim.world().cubes if c.get("name") == self._name), None)

    def get_matrix(self, relative_to=None) -> np.ndarray:
        cube = self._cube()
        if cube is None:
            return super().get_matrix()
        m = np.eye(4)
        m[:3, :3] = _quat_to_matrix(cube["quat"])
        m[:3, 3] = [cube["xy"][0], cube["xy"][1], cube["top"] - cube["half"]]
        return m

    def set_matrix(self, matrix: np.ndarray, relative_to=None) -> None:
        cube = self._cube()
        if cube is None:
            return super().set_matrix(matrix)
        m = np.asarray(matrix, dtype=np.float64).reshape(4, 4)
        cube["xy"], cube["top"] = m[:2, 3].copy(), float(m[2, 3] + cube["half"])
        cube["quat"] = _matrix_to_quat(m[:3, :3])
