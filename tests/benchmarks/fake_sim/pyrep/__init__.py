"""Fake of stepjam/PyRep @ 231a1ac ``pyrep/__init__.py`` (see fake_sim/README.md)."""

__version__ = "4.1.0.3"

testing = False

from .pyrep import PyRep  # noqa: E402, F401
