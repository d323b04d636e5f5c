"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/objects/dummy.py``."""

from pyrep.const import ObjectType
from pyrep.objects.object import Object


class Dummy(Object):
    def _get_requested_type(self) -> ObjectType:
        return ObjectType.DUMMY

    @staticmethod
    def create(size: float = 0.01) -> "Dummy":
        return Dummy("dummy")
