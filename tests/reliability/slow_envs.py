"""The tests' fake environments, slowed down so that a kill lands in the middle of a run (kill -9 tests)."""

from __future__ import annotations

import time

from tests.benchmarks.fake_demo_env import FakeDemoEnv
from tests.bridgevla.evaluation.test_runner import FakeEnv

STEP_SECONDS = 0.05


class SlowFakeDemoEnv(FakeDemoEnv):
    def step(self, keypose):
        time.sleep(STEP_SECONDS)
        return super().step(keypose)


class SlowFakeEnv(FakeEnv):
    def step(self, kp):
        time.sleep(STEP_SECONDS)
        return super().step(kp)


def make_slow_fake_env(options: dict) -> SlowFakeEnv:
    return SlowFakeEnv(options)
