"""Episode memory (``memory_keyposes``): act() draws the executed keyposes into its input, the evaluation agent keeps
them per episode, and a tiny policy learns a choice that only the memory can make."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.protocol import Keypose
from bridgevla.data.batch import collate
from bridgevla.data.preprocess import MemoryMarkers, add_memory_markers
from bridgevla.evaluation.agents import PolicyAgent
from pretrain.scenes import tabletop_samples
from tests.bridgevla.model_helpers import (
    fit_until,
    overhead_observation,
    single_thread,  # noqa: F401 (a fixture)
    tiny_policy,
)

pytestmark = pytest.mark.usefixtures("single_thread")


def _kp(x: float, open_: bool = True) -> Keypose:
    return Keypose([x, 0.0, 1.0], [0, 0, 0, 1.0], open_, False)


def test_act_uses_the_history_only_when_memory_is_on():
    obs = overhead_observation(seed=0)
    memory = tiny_policy(seed=0, memory_keyposes=2).eval()
    seen = []
    original = memory.predict
    memory.predict = lambda batch: seen.append(batch.points[batch.mask].clone()) or original(batch)
    memory.act(obs)
    memory.act(obs, history=[_kp(0.1), _kp(0.2, False), _kp(0.3)])
    assert len(seen[1]) == len(seen[0]) + 2 * 48  # the last two of three keyposes, 48 points each
    assert torch.allclose(seen[1][len(seen[0]):].mean(0), torch.tensor([0.25, 0.0, 1.0]), atol=1e-3)
    plain = tiny_policy(seed=0).eval()
    assert plain.act(obs, history=[_kp(0.1)]).position.tolist() == plain.act(obs).position.tolist()
    with pytest.raises(ValueError, match="history"):
        memory.act([obs, obs], history=[[]])


def test_the_evaluation_agent_keeps_the_history_per_episode(tmp_path):
    tiny_policy(seed=0, memory_keyposes=3).save_pretrained(tmp_path / "p")
    agent = PolicyAgent(str(tmp_path / "p"), device="cpu")
    calls = []
    act = agent.policy.act
    agent.policy.act = lambda obs, **kw: calls.append(list(kw["history"])) or act(obs, **kw)
    obs = overhead_observation(seed=1)
    agent.reset(None, obs, 0)
    first, second = agent.act(obs), agent.act(obs)
    agent.reset(None, obs, 1)
    agent.act(obs)
    assert [len(h) for h in calls] == [0, 1, 0]
    assert calls[1][0] is first and agent.history[-1] is not second


def test_markers_reject_non_finite_history():
    pts, cols = np.zeros((1, 3), np.float32), np.zeros((1, 3), np.float32)
    with pytest.raises(ValueError, match="non-finite"):
        add_memory_markers(pts, cols, [([np.nan, 0, 1], 1.0)], MemoryMarkers(1))
    assert add_memory_markers(pts, cols, [([0, 0, 1], 1.0)], None)[0] is pts
    with pytest.raises(ValueError, match="memory_keyposes"):
        tiny_policy(memory_keyposes=-1)


@pytest.mark.slow
def test_memory_decides_what_the_scene_cannot():
    """Two samples with the same cloud and instruction whose targets differ (the first and second object of a
    sequence): only the marker of the keypose already executed tells them apart. With memory the tiny policy
    learns both within 2 cm; it has to, since nothing else differs."""
    scene = tabletop_samples(1, seed=3, table_points=800, points_per_object=80, objects=(2, 2))[0]
    a, b = dict(scene), dict(scene)
    first, second = np.array([0.05, -0.2, 1.05], np.float32), np.array([0.3, 0.25, 1.05], np.float32)
    a["target_position"], b["target_position"] = first, second
    memory = MemoryMarkers(1)
    b["points"], b["colors"] = add_memory_markers(np.asarray(scene["points"]), np.asarray(scene["colors"]),
                                                  [(first, 1.0)], memory)
    batch = collate([a, b])
    policy = tiny_policy(seed=0, memory_keyposes=1)

    def errors():
        return (policy.predict(batch).position - batch.target_position).norm(dim=-1)

    step = fit_until(policy, batch, lambda: bool(errors().max() < 0.02), max_steps=600)
    err = errors()
    assert err.max().item() < 0.02, f"position errors {err.tolist()} m after {step} steps"
