from dataclasses import dataclass, field
from typing import Literal

import pytest

from bridgevla.configuration import ConfigError, load_config, parse_overrides, save_config


@dataclass
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Literal["constant", "cosine"] = "constant"


@dataclass
class Job:
    name: str = "run"
    steps: int = 10
    tasks: list[str] = field(default_factory=lambda: ["a"])
    optim: Optim = field(default_factory=Optim)
    resume: bool = False
    out: str | None = None


def test_yaml_then_overrides(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text("steps: 20\noptim:\n  lr: 0.001\n")
    cfg = load_config(Job, path, ["optim.schedule=cosine", "tasks=[x, y]", "resume=true", "optim.betas=[0.8, 0.9]"])
    assert cfg.steps == 20 and cfg.optim.lr == 0.001 and cfg.optim.schedule == "cosine"
    assert cfg.tasks == ["x", "y"] and cfg.resume is True and cfg.optim.betas == (0.8, 0.9)
    save_config(cfg, tmp_path / "out.yaml")
    assert load_config(Job, tmp_path / "out.yaml") == cfg


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["stepz=3"], "stepz"),
        (["optim.lrr=3"], "optim.lrr"),
        (["steps=abc"], "steps"),
        (["steps=1.5"], "steps"),
        (["optim.schedule=linear"], "optim.schedule"),
        (["optim.betas=[1]"], "optim.betas"),
        (["resume=maybe"], "resume"),
        (["novalue"], "key=value"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(Job, None, overrides)


def test_missing_file_and_comma_lists(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Job, tmp_path / "nope.yaml")
    assert parse_overrides(["a.b=1"]) == {"a": {"b": 1}}
    assert load_config(Job, None, ["tasks=a,b,c"]).tasks == ["a", "b", "c"]
