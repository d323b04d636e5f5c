"""Watching an episode while the runner plays it: the observer hook behind evaluation videos and ``bridgevla inspect``.

The runner calls an :class:`EpisodeObserver` after the reset and after every executed keypose; observers never change
what happens in the episode. :class:`TickRecorder` gives them the arm's motion between keyposes, tick by tick, from
the environment's optional ``start_recording`` / ``stop_recording`` capability (``EmbeddedEnv`` and the test
environments have it, see docs/INTERFACES.md); an environment without it only yields the observations at keyposes.
"""

from __future__ import annotations

from typing import Any, Protocol

from benchmarks.protocol import Environment, Keypose, Observation


class EpisodeObserver(Protocol):
    def on_reset(self, env: Environment, observation: Observation) -> None:
        """Right after ``env.reset`` and ``agent.reset`` succeeded."""

    def on_step(self, env: Environment, keypose: Keypose, observation: Observation, info: dict[str, Any]) -> None:
        """After ``env.step(keypose)`` returned ``observation``."""

    def close(self, env: Environment) -> None:
        """The episode is over (finished, failed or crashed): release what the observer holds in ``env``."""


class TickRecorder:
    """Per-keypose segments of the environment's tick recording.

    ``start`` turns recording on after the reset; ``segment`` returns the ticks executed since the previous call
    (the environment's recording restarts at every call, and the restart's first frame - the state the previous
    segment ended in - is dropped, so consecutive segments never repeat a tick); ``stop`` turns it off. With an
    environment that cannot record, ``segment`` returns only the observation after the step.
    ``image_every``: camera images on every N-th tick (the environment also renders the first and last tick of a
    move); a large value keeps only the low-dimensional state, which is all a trajectory needs.
    """

    def __init__(self, image_every: int = 1) -> None:
        if image_every < 1:
            raise ValueError(f"image_every must be >= 1, got {image_every}")
        self.image_every = image_every
        self.active = False

    @staticmethod
    def supported(env: Environment) -> bool:
        return callable(getattr(env, "start_recording", None)) and callable(getattr(env, "stop_recording", None))

    def start(self, env: Environment) -> None:
        if self.supported(env):
            env.start_recording(self.image_every)
            self.active = True

    def segment(self, env: Environment, observation: Observation) -> list[Observation]:
        if not self.active:
            return [observation]
        frames = list(env.stop_recording())[1:]  # [0] is the state the previous segment ended in
        env.start_recording(self.image_every)
        return frames or [observation]  # a step that moved nothing (e.g. a planning failure): its end state

    def stop(self, env: Environment) -> None:
        if self.active:
            env.stop_recording()
            self.active = False
