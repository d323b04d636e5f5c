"""``speed_policy --flops``: the training step's FLOPs by model part, checked against hand-counted transformer FLOPs."""

from __future__ import annotations

import torch

from bridgevla.data.batch import collate
from bridgevla.model.config import BridgeVLAConfig
from bridgevla.model.policy import BridgeVLAPolicy
from bridgevla.scripts.speed_policy import flop_split
from pretrain.scenes import tabletop_samples


def test_flop_split_matches_hand_counted_transformer_flops():
    torch.manual_seed(0)
    c = BridgeVLAConfig(preset="tiny")
    policy = BridgeVLAPolicy(c, device="cpu")
    batch = collate(tabletop_samples(2, seed=1, table_points=2000))
    counted = flop_split(policy, batch, "tiny")
    images = 2 * 2 * 3  # samples x stages x views
    # Vision tower, per image: patch embedding; per layer q, k, v, o projections, the MLP, and attention's two
    # T x T products (multiply-add = 2 FLOPs).
    t, d, i = (c.image_size // c.patch_size) ** 2, c.vision_hidden_size, c.vision_intermediate_size
    vision = images * (2 * t * 3 * c.patch_size**2 * d + c.vision_layers * (4 * 2 * t * d * d + 2 * 2 * t * d * i
                                                                          + 2 * 2 * t * t * d))
    # Language model over both stages' prompts (image tokens + text): grouped-query projections, gated MLP, attention.
    ids, _ = policy.encode_instructions(batch.instructions)
    n, length = 2 * ids.shape[0], ids.shape[1]
    d, i, hd = c.text_hidden_size, c.text_intermediate_size, c.text_head_dim
    q, kv = c.text_heads * hd, c.text_kv_heads * hd
    per_layer = 2 * length * d * (2 * q + 2 * kv) + 3 * 2 * length * d * i + 2 * 2 * length * length * q
    assert counted["vision tower"] == vision
    assert counted["language model"] == n * c.text_layers * per_layer
    # The attention counted (eager during counting) and the SDPA setting restored.
    assert policy.backbone.model.config.text_config._attn_implementation == c.attn_implementation
    parts = sum(v for k, v in counted.items() if k != "total")
    assert 0.95 * counted["total"] <= parts <= counted["total"]


def test_a_timed_model_is_a_preset_with_checked_overrides():
    import pytest

    from bridgevla.configuration import ConfigError
    from bridgevla.scripts.speed_policy import model_config

    c = model_config("small:image_size=48,text_layers=2", "float32")
    assert (c.preset, c.image_size, c.text_layers, c.patch_size) == ("small", 48, 2, 8)  # the rest from the preset
    assert model_config("tiny", "float32").image_size == 64
    with pytest.raises(ConfigError, match="image_sise"):
        model_config("small:image_sise=48", "float32")


def test_a_mistyped_model_setting_is_one_line_on_the_command_line(capsys):
    import pytest

    from bridgevla.scripts.speed_policy import main

    with pytest.raises(SystemExit) as e:
        main(["--models", "small", "small:image_sise=48"])
    assert e.value.code == 2
    assert "--models small:image_sise=48: unknown config key(s) ['image_sise']" in capsys.readouterr().err


def test_cotrain_option_times_both_variants_of_a_cotrained_step(capsys):
    """`--cotrain K` adds two rows — the scenes in a pass of their own and in the demos' — each a positive time."""
    from bridgevla.scripts.speed_policy import main

    main(["--models", "tiny", "--train-batch", "2", "--cotrain", "1", "--repeats", "1", "--threads", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if "co-trained step" in line]
    assert [r.split("|")[3].strip() for r in rows] == ["co-trained step, batch 2 + 1 scenes, two passes",
                                                       "co-trained step, batch 2 + 1 scenes, one pass"]
    assert all(float(r.split("|")[4]) > 0 for r in rows)
