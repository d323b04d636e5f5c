"""BridgeVLAConfig: presets, overrides through the one config system, validation that names the field."""

from __future__ import annotations

import pytest

from bridgevla.configuration import ConfigError, load_config, to_dict
from bridgevla.model.config import PRESETS, BridgeVLAConfig


def test_preset_fills_unset_fields_and_keeps_explicit_ones():
    cfg = BridgeVLAConfig(preset="small", text_layers=5)
    assert cfg.image_size == PRESETS["small"]["image_size"]
    assert cfg.text_layers == 5
    assert cfg.grid_size == PRESETS["small"]["image_size"] // PRESETS["small"]["patch_size"]


def test_reference_defaults():
    cfg = BridgeVLAConfig()
    assert cfg.preset == "paligemma-3b-224"
    assert (cfg.image_size, cfg.patch_size, cfg.grid_size) == (224, 14, 16)
    assert (cfg.text_hidden_size, cfg.head_hidden_size, cfg.action_hidden_sizes) == (2048, 4096, [4096, 2048])
    assert cfg.num_rotation_bins == 72 and cfg.zoom_factor == 4.0 and cfg.heatmap_sigma == 1.5
    assert cfg.rotation_bin_noise == (-2, 1) and cfg.stage1_noise == 0.1
    assert cfg.bounds == [-0.3, -0.5, 0.6, 0.7, 0.5, 1.6] and cfg.extra_channels == []


def test_yaml_and_cli_overrides(tmp_path):
    path = tmp_path / "m.yaml"
    path.write_text("preset: tiny\nzoom_factor: 3\nextra_channels: [depth]\n")
    cfg = load_config(BridgeVLAConfig, path, ["image_size=96", "patch_size=12", "bounds=[0,0,0,1,1,1]"])
    assert (cfg.preset, cfg.zoom_factor, cfg.image_size, cfg.grid_size) == ("tiny", 3.0, 96, 8)
    assert cfg.extra_channels == ["depth"] and cfg.num_view_channels == 4
    # The resolved dict reloads to the same config (what checkpoints rely on).
    assert BridgeVLAConfig.from_dict(to_dict(cfg)) == cfg


@pytest.mark.parametrize(
    "overrides, field",
    [
        (["image_size=100", "patch_size=16"], "image_size"),
        (["patch_size=0"], "patch_size"),
        (["extra_channels=[normals]"], "extra_channels"),
        (["bounds=[0,0,0,1,1]"], "bounds"),
        (["zoom_factor=-1"], "zoom_factor"),
        (["stage1_noise=-0.1"], "stage1_noise"),
        (["rotation_bin_noise=[2,-2]"], "rotation_bin_noise"),
        (["preset=huge"], "preset"),
        (["action_hidden_sizes=[]"], "action_hidden_sizes"),
        (["max_points=-5"], "max_points"),
    ],
)
def test_bad_values_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        load_config(BridgeVLAConfig, None, ["preset=tiny", *overrides])


def test_unknown_key_is_an_error():
    with pytest.raises(ConfigError, match="img_size"):
        load_config(BridgeVLAConfig, None, ["img_size=3"])


def test_backbone_path_leaves_architecture_to_the_checkpoint():
    cfg = BridgeVLAConfig(preset="paligemma-3b-224", backbone_path="/somewhere")
    assert cfg.image_size is None and cfg.text_hidden_size is None
    assert cfg.head_hidden_size == 4096  # heads still come from the preset


def test_docs_preset_table_matches_the_code():
    """docs/model.md's preset table is read back and compared with PRESETS (it once drifted: small said 96 px)."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "model.md").read_text()
    rows = {m.group(1): [c.strip() for c in m.group(2).split("|")]
            for m in re.finditer(r"^\| `([\w-]+)`(?: \(default\))? \|(.*)\|$", doc, re.M) if m.group(1) in PRESETS}
    assert set(rows) == set(PRESETS)
    for name, (views, patch, vision, language, *_rest) in rows.items():
        p = PRESETS[name]
        g = p["image_size"] // p["patch_size"]
        assert views == f"{p['image_size']} px", name
        assert patch == f"{p['patch_size']} / {g}×{g}", name
        assert vision.startswith(f"{p['vision_hidden_size']}×{p['vision_layers']}"), name
        assert language.startswith(f"{p['text_hidden_size']}×{p['text_layers']}"), name
