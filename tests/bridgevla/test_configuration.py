from dataclasses import dataclass, field
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_a_config_extends_another_key_by_key(tmp_path):
    (tmp_path / "base.yaml").write_text("steps: 20\ntasks: [a, b]\noptim:\n  lr: 0.001\n  schedule: cosine\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text("extends: ../base.yaml\ntasks: [c]\noptim:\n  lr: 0.002\n")
    cfg = load_config(Job, tmp_path / "sub" / "child.yaml", ["steps=30"])
    # lists are replaced, sections merged key by key, overrides win over both files
    assert cfg.tasks == ["c"] and cfg.optim.lr == 0.002 and cfg.optim.schedule == "cosine" and cfg.steps == 30
    (tmp_path / "grand.yaml").write_text("extends: sub/child.yaml\nname: g\n")
    assert load_config(Job, tmp_path / "grand.yaml").optim.lr == 0.002  # chains resolve
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="loops back"):
        load_config(Job, tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="must name one YAML file"):
        load_config(Job, tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml does not exist"):
        load_config(Job, tmp_path / "d.yaml")


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


# ---- hostile input: every failure is a ConfigError naming the key or the file -----------------------------------
def test_malformed_yaml_non_utf8_and_wrong_top_level_name_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("steps: 3\noptim:\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML at line \d+, column \d+"):
        load_config(Job, bad)
    bad.write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(ConfigError, match="bad.yaml is not UTF-8"):
        load_config(Job, bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="bad.yaml must hold a mapping at the top level, got list"):
        load_config(Job, bad)
    bad.write_text("[" * 5000 + "]" * 5000)
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_config(Job, bad)


@pytest.mark.parametrize(("data", "key"), [
    ({1: 2}, "1"), ({"optim": [1, 2]}, "optim"), ({"optim": {"lr": "nan"}}, "optim.lr"),
    ({"optim": {"lr": float("inf")}}, "optim.lr"), ({"steps": 10**400}, "steps"), ({"optim": {"lr": 10**400}}, "lr"),
    ({"tasks": {"a": 1}}, "tasks"), ({"out": ["x"]}, "out"),
])
def test_wrong_container_types_and_non_finite_numbers_name_the_key(data, key):
    from bridgevla.configuration import from_dict

    with pytest.raises(ConfigError, match=key):
        from_dict(Job, data)


def _field_paths(cls, prefix=""):
    import dataclasses
    import typing

    out = []
    for f in dataclasses.fields(cls):
        tp = typing.get_type_hints(cls)[f.name]
        out.append(prefix + f.name)
        if dataclasses.is_dataclass(tp):
            out += _field_paths(tp, prefix + f.name + ".")
    return out


def _job_classes():
    from benchmarks.embedded import EmbeddedConfig
    from benchmarks.generate import GenerateConfig
    from bridgevla.evaluation.runner import EvalConfig
    from bridgevla.model.config import BridgeVLAConfig
    from bridgevla.scripts.demo import DemoConfig
    from bridgevla.training.job import TrainJobConfig
    from pretrain.job import PretrainJobConfig

    return [TrainJobConfig, EvalConfig, GenerateConfig, DemoConfig, PretrainJobConfig, BridgeVLAConfig,
            EmbeddedConfig]


_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(10**15), 10**15), st.floats(), st.text(max_size=8),
                    st.sampled_from(["tiny", "small", "1e12", "nan", "a,b", "-1", "0", "[1, 2]"]))
_tree = st.recursive(_scalar, lambda c: st.one_of(st.lists(c, max_size=3),
                                                  st.dictionaries(st.one_of(st.text(max_size=6), st.integers()), c,
                                                                  max_size=3)), max_leaves=6)


@settings(max_examples=30, deadline=None)
@given(st.data())
def test_fuzzed_configs_load_or_raise_config_error(data):
    """Any value at any key of every job config: either a config, or a ConfigError (never another exception)."""
    _fuzz_config(data)


@pytest.mark.slow
@settings(max_examples=600, deadline=None)
@given(st.data())
def test_many_fuzzed_configs(data):
    _fuzz_config(data)


def _fuzz_config(data) -> None:
    from bridgevla.configuration import from_dict
    from bridgevla.model.config import MAX_PARAMETERS

    cls = data.draw(st.sampled_from(_job_classes()))
    paths = _field_paths(cls)
    tree: dict = {}
    for path in data.draw(st.lists(st.sampled_from(paths), min_size=1, max_size=4, unique=True)):
        node = tree
        parts = path.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else {}
        node[parts[-1]] = data.draw(_tree)
    try:
        cfg = from_dict(cls, tree)
    except ConfigError:
        return
    model = getattr(cfg, "model", cfg)
    if hasattr(model, "estimated_parameters"):
        assert model.estimated_parameters() <= MAX_PARAMETERS


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=20), st.tuples(st.sampled_from(
    ["model.preset", "model.vocab_size", "data.root", "train.steps", "optim.betas", "model.bounds", "lora", "x..y",
     "model", "train.steps.x", "="]), st.text(max_size=12)).map("=".join)), max_size=4))
def test_fuzzed_command_line_overrides_load_or_raise_config_error(overrides):
    from bridgevla.training.job import TrainJobConfig

    try:
        load_config(TrainJobConfig, None, overrides)
    except ConfigError:
        pass
