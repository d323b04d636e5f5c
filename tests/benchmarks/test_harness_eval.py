"""``bridgevla eval --benchmark rlbench|gembench`` end to end on the fake CoppeliaSim stack: the registry builds the
adapter from ``env.*`` options, the runner's seeds pick the stored test episodes, the expert replays the stored
demos' keyposes, and the published table comes out."""

from __future__ import annotations

import json

import pytest

from bridgevla.configuration import load_config
from bridgevla.evaluation.runner import EvalConfig, evaluate
from bridgevla.scripts.cli import main

from .test_rlbench_env import write_test_set


def test_bridgevla_eval_rlbench_writes_the_published_table(fake_harness, tmp_path, capsys):
    fake_harness()
    for task, seeds in (("close_jar", [1, 2]), ("open_drawer", [3, 4])):
        write_test_set(tmp_path / "test" / task / "all_variations" / "episodes", seeds, variations=[0, 1])
    out = tmp_path / "eval"
    rc = main(["eval", "--benchmark", "rlbench", "--agents", "expert,random", "--tasks", "close_jar,open_drawer",
               "--episodes", "2", "--seeds", "0,1", "--out", str(out), "seed_offset=0", "progress=false",
               f"env.test_root={tmp_path / 'test'}", "env.image_size=16"])
    assert rc == 0
    table = (out / "table.md").read_text()
    assert "| expert | 100.0 ± 0.0 | 100.0 ± 0.0 | 100.0 ± 0.0 |" in table
    assert "| random | 0.0 ± 0.0 |" in table and "| BridgeVLA (published) | 88.2 | 100.0 | 100.0 |" in table
    assert table in capsys.readouterr().out
    records = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(records) == 16 and {r["env_seed"] for r in records} == {0, 1, 10_000, 10_001}
    # the harness's diagnosis reaches the JSONL (the random keyposes never touch the cube; successes get none)
    assert [r.get("diagnosis") for r in records if r["agent"] == "random"] == ["no object moved"] * 8
    assert all("diagnosis" not in r for r in records if r["agent"] == "expert")
    assert sorted(p.name for p in out.iterdir()) == [
        "episodes.jsonl", "failures.json", "failures.md", "results.csv", "results.json", "results.md", "results.png",
        "table.csv", "table.json", "table.md", "table.png"]


def test_gembench_runs_on_its_published_seeds(fake_harness, tmp_path):
    fake_harness("gembench")
    for seed in (200, 300):
        write_test_set(tmp_path / "micro" / f"seed{seed}" / "push_button" / "variation0" / "episodes",
                       [seed + 1, seed + 2])
    cfg = load_config(EvalConfig, "bridgevla/configs/eval_gembench.yaml",
                      ["agents=[expert]", "tasks=[push_button+0]", "episodes=2", "seeds=[200,300]", "progress=false",
                       f"out_dir={tmp_path / 'ev'}", f"env.test_root={tmp_path / 'micro'}", "env.image_size=16"])
    assert cfg.seed_offset == 0 and cfg.benchmark == "gembench"
    records = evaluate(cfg)
    assert [r["success"] for r in records] == [True] * 4
    assert [r["env_seed"] for r in records] == [2_000_000, 2_000_001, 3_000_000, 3_000_001]


@pytest.mark.parametrize(("name", "episodes", "seeds"), [("rlbench", 25, [0, 1, 2, 3, 4]), ("colosseum", 25, [0]),
                                                         ("gembench", 20, [200, 300, 400, 500, 600])])
def test_shipped_protocol_configs(name, episodes, seeds):
    cfg = load_config(EvalConfig, f"bridgevla/configs/eval_{name}.yaml", ["agents=[random]"])
    assert (cfg.benchmark, cfg.episodes, cfg.seeds, cfg.seed_offset, cfg.max_keyposes) == (
        name, episodes, seeds, 0, 25)
