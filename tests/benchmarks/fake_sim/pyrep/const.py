"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/const.py`` (the enums the harnesses use; values are arbitrary)."""

from enum import Enum


class ObjectType(Enum):
    ALL = 0
    SHAPE = 1
    VISION_SENSOR = 2
    DUMMY = 3


class RenderMode(Enum):
    OPENGL = 0
    OPENGL_AUXILIARY = 1
    OPENGL_COLOR_CODED = 2
    POV_RAY = 3
    EXTERNAL = 4
    EXTERNAL_WINDOWED = 5
    OPENGL3 = 6
    OPENGL3_WINDOWED = 7


class ConfigurationPathAlgorithms(Enum):
    BiTRRT = "BiTRRT"
    RRTConnect = "RRTConnect"
