from pyrep.objects.dummy import Dummy  # noqa: F401
from pyrep.objects.object import Object  # noqa: F401
from pyrep.objects.shape import Shape  # noqa: F401
from pyrep.objects.vision_sensor import VisionSensor  # noqa: F401
