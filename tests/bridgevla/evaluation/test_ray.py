"""The Ray fan-out on a local Ray instance: the embedded benchmark gives the same JSONL as the local runner (and
resumes from it), and an actor whose simulator takes it down is replaced. Slow: a local Ray takes ~20 s to start."""

from __future__ import annotations

import json
import shutil

import pytest

from bridgevla.evaluation.runner import EPISODES_FILE, EvalConfig, evaluate

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")  # loopback only
    yield
    ray.shutdown()


def _lines(path):
    """JSONL records without their wall-clock time, by episode key."""
    out = {}
    for line in path.read_text().splitlines():
        r = json.loads(line)
        r.pop("seconds")
        out[(r["agent"], r["task"], r["seed"], r["episode"])] = r
    return out


def test_ray_gives_the_local_runners_jsonl_and_resumes_it(tmp_path, local_ray):
    base = dict(benchmark="embedded", agents=["expert", "random"], tasks=["open_drawer", "lift_block"], episodes=2,
                seeds=[0], max_keyposes=4, progress=False)
    local = evaluate(EvalConfig(**base, out_dir=str(tmp_path / "local")))
    assert sum(r["success"] for r in local) == 4  # the expert's four; the random agent's none
    # a Ray run that starts from a JSONL a crash left behind: 3 episodes done, a torn 4th line
    (tmp_path / "ray").mkdir()
    done = (tmp_path / "local" / EPISODES_FILE).read_text().splitlines()[:3]
    (tmp_path / "ray" / EPISODES_FILE).write_text("\n".join(done) + '\n{"agent": "rand')
    evaluate(EvalConfig(**base, out_dir=str(tmp_path / "ray"), ray_address="local", workers=2))
    assert _lines(tmp_path / "ray" / EPISODES_FILE) == _lines(tmp_path / "local" / EPISODES_FILE)
    assert len((tmp_path / "ray" / EPISODES_FILE).read_text().splitlines()) == 8  # 3 kept + 5 run on Ray
    shutil.rmtree(tmp_path / "local")


def test_a_ray_actor_that_dies_is_replaced_and_its_episode_rerun(tmp_path, local_ray):
    crashy = "tests.bridgevla.evaluation.test_restarts:make_crashy_env"
    cfg = dict(benchmark=crashy, agents=["expert"], tasks=["press_twice", "reach_red"], episodes=2, seeds=[0],
               progress=False, ray_address="local", workers=2)
    once = evaluate(EvalConfig(**cfg, out_dir=str(tmp_path / "once"),
                               env={"crash_seed": 1_000_001, "mode": "die", "marker": str(tmp_path / "m")}))
    assert (tmp_path / "m").exists() and all(r["success"] for r in once)
    assert sorted(r["restarts"] for r in once) == [0, 0, 0, 1]  # the episode whose actor died reran once
    always = evaluate(EvalConfig(**cfg, out_dir=str(tmp_path / "always"), restarts=1,
                                 env={"crash_seed": 1_000_001, "mode": "die"}))
    bad = sorted((r["task"], r["episode"], r["restarts"], r["error"].split(":")[0]) for r in always if r["error"])
    assert bad == [("press_twice", 1, 1, "Ray worker died (simulator crash?)"),
                   ("reach_red", 1, 1, "Ray worker died (simulator crash?)")]
