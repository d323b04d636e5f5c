"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/objects/dummy.py``."""

from pyrep.objects.object import Object


class Dummy(Object):
    @staticmethod
    def create(size: float = 0.01) -> "Dummy":
        return Dummy("dummy")
