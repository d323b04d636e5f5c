"""RLBench's pickles without trusting them: a restricted reader and a writer with RLBench-named stand-ins.

RLBench stores each demo's low-dim data as a pickled ``rlbench.demo.Demo`` of
``rlbench.backend.observation.Observation`` objects. Unpickling runs whatever callables the file names, so the
reader resolves exactly two rlbench classes (to plain record classes of ours, never to RLBench itself, which we do
not import) and the handful of numpy helpers an array pickle needs. Every other global — ``os.system``,
``builtins.eval``, any other class — raises :class:`ForbiddenPickleError` before anything runs.

The writer produces files the real RLBench can load: its stand-in classes pickle under RLBench's module and class
names, and numpy helpers are written under their numpy-1 names (``numpy.core.multiarray``), which both numpy 1.x
and 2.x resolve.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

DEMO_CLASS = ("rlbench.demo", "Demo")
OBSERVATION_CLASS = ("rlbench.backend.observation", "Observation")
# Protocol 3 is what RLBench's Python 3.6/3.7 era wrote by default, and every Python 3 reads it.
WRITE_PROTOCOL = 3

# The PerAct fork's Observation.__init__ arguments, in order (upstream RLBench has a subset).
OBSERVATION_FIELDS: tuple[str, ...] = (
    *(f"{cam}_{kind}" for cam in ("left_shoulder", "right_shoulder", "overhead", "wrist", "front")
      for kind in ("rgb", "depth", "mask", "point_cloud")),
    "joint_velocities",
    "joint_positions",
    "joint_forces",
    "gripper_open",
    "gripper_pose",
    "gripper_matrix",
    "gripper_joint_positions",
    "gripper_touch_forces",
    "task_low_dim_state",
    "ignore_collisions",
    "misc",
)


class ForbiddenPickleError(pickle.UnpicklingError, ValueError):
    """A pickle named a global that the restricted reader does not allow."""


class _Record:
    """A plain attribute bag. Unpickling fills ``__dict__`` from the stored state; no code of the file runs."""

    _fields: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if len(args) > len(self._fields):
            raise ForbiddenPickleError(f"{type(self).__name__} got {len(args)} positional values")
        self.__dict__.update(zip(self._fields, args))
        self.__dict__.update(kwargs)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DemoRecord(_Record):
    """What ``rlbench.demo.Demo`` becomes: ``_observations``, ``random_seed``, maybe ``num_reset_attempts``."""

    _fields = ("_observations", "random_seed", "num_reset_attempts")

    @property
    def observations(self) -> list[ObservationRecord]:
        return list(self.__dict__.get("_observations", []))


class ObservationRecord(_Record):
    """What ``rlbench.backend.observation.Observation`` becomes: its attributes, nothing else."""

    _fields = OBSERVATION_FIELDS


def _numpy_helpers() -> dict[tuple[str, str], Any]:
    try:  # numpy 2
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    import codecs

    helpers: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for pkg in ("numpy.core", "numpy._core"):  # pickles name whichever numpy wrote them
        helpers[(f"{pkg}.multiarray", "_reconstruct")] = multiarray._reconstruct
        helpers[(f"{pkg}.multiarray", "scalar")] = multiarray.scalar
        helpers[(f"{pkg}.numeric", "_frombuffer")] = numeric._frombuffer
    # Protocol-2 pickles spell bytes as _codecs.encode(text, "latin1"); it only encodes a string.
    helpers[("_codecs", "encode")] = codecs.encode
    return helpers


_ALLOWED: dict[tuple[str, str], Any] = {DEMO_CLASS: DemoRecord, OBSERVATION_CLASS: ObservationRecord}
_ALLOWED.update(_numpy_helpers())


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only RLBench's Demo/Observation (to records) and numpy's array helpers; refuses the rest."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise ForbiddenPickleError(
                f"refusing to unpickle global {module}.{name}: an RLBench pickle may only reference "
                f"rlbench.demo.Demo, rlbench.backend.observation.Observation and numpy arrays"
            ) from None


def load_rlbench_pickle(path: str | Path) -> Any:
    """Read one RLBench pickle (low_dim_obs.pkl, variation_number.pkl, ...) through the restricted reader."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {path} is not a file")
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f).load()
        except ForbiddenPickleError as e:
            raise ForbiddenPickleError(f"{path}: {e}") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, TypeError, IndexError) as e:
            raise ValueError(f"path {path} is not a readable RLBench pickle: {type(e).__name__}: {e}") from e


class RLBenchDemo:
    """Stand-in that pickles as ``rlbench.demo.Demo`` (same attributes as RLBench's)."""

    def __init__(self, observations: list[RLBenchObservation], random_seed: Any = None) -> None:
        self._observations = observations
        self.random_seed = random_seed
        self.num_reset_attempts = None


class RLBenchObservation:
    """Stand-in that pickles as ``rlbench.backend.observation.Observation`` with the PerAct fork's fields."""

    def __init__(self, **values: Any) -> None:
        unknown = sorted(set(values) - set(OBSERVATION_FIELDS))
        if unknown:
            raise ValueError(f"values has unknown Observation fields {unknown}")
        for name in OBSERVATION_FIELDS:
            setattr(self, name, values.get(name))


class _RLBenchPickler(pickle._Pickler):  # the pure-Python pickler: its save_global can be overridden
    def __init__(self, file: io.BufferedIOBase) -> None:
        super().__init__(file, protocol=WRITE_PROTOCOL)
        h = _numpy_helpers()
        self._names = {
            RLBenchDemo: DEMO_CLASS,
            RLBenchObservation: OBSERVATION_CLASS,
            h[("numpy._core.multiarray", "_reconstruct")]: ("numpy.core.multiarray", "_reconstruct"),
            h[("numpy._core.multiarray", "scalar")]: ("numpy.core.multiarray", "scalar"),
        }

    def save_global(self, obj: Any, name: str | None = None) -> None:
        try:
            module, qualname = self._names[obj]
        except (KeyError, TypeError):
            return super().save_global(obj, name)
        self.write(pickle.GLOBAL + module.encode() + b"\n" + qualname.encode() + b"\n")
        self.memoize(obj)


def dump_rlbench_pickle(obj: Any, path: str | Path) -> None:
    """Write ``obj`` (built from the stand-ins, numpy arrays and plain Python values) as RLBench would."""
    buf = io.BytesIO()
    _RLBenchPickler(buf).dump(obj)
    Path(path).write_bytes(buf.getvalue())
