"""The PaliGemma backbone: transformers' real ``PaliGemmaForConditionalGeneration``, built from a config (random
weights) or loaded from a local Hugging Face folder, wrapped to turn views + a prompt into per-view token grids.

Features are the last hidden layer at the image tokens, reshaped to ``(B, V, D, g, g)`` (the reference's choice).
Attention is bidirectional over images and text (PaliGemma's prefix attention), so the image tokens see the
instruction. That needs ``token_type_ids`` (0 = prefix): without them transformers builds a *causal* mask as soon as a
batch holds padding, so in training (prompts of different lengths) the image tokens, which come first, never saw the
text, while a lone unpadded prompt at inference attended both ways. Tests check both and batch invariance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn
from transformers import (
    AutoTokenizer,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    PreTrainedTokenizerBase,
)

from bridgevla.model.config import BACKBONE_FIELDS, BridgeVLAConfig
from bridgevla.model.tokenizer import build_offline_tokenizer, image_token_id

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def paligemma_config(config: BridgeVLAConfig, tokenizer: PreTrainedTokenizerBase) -> PaliGemmaConfig:
    """A ``PaliGemmaConfig`` with the sizes of ``config`` (random-init presets)."""
    vocab = max(int(config.vocab_size), len(tokenizer))
    vision = dict(
        hidden_size=config.vision_hidden_size,
        intermediate_size=config.vision_intermediate_size,
        num_hidden_layers=config.vision_layers,
        num_attention_heads=config.vision_heads,
        image_size=config.image_size,
        patch_size=config.patch_size,
        vision_use_head=False,
    )
    text = dict(
        hidden_size=config.text_hidden_size,
        intermediate_size=config.text_intermediate_size,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_kv_heads,
        head_dim=config.text_head_dim,
        vocab_size=vocab,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return PaliGemmaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=image_token_id(tokenizer),
        vocab_size=vocab,
        projection_dim=config.text_hidden_size,
        hidden_size=config.text_hidden_size,
        pad_token_id=tokenizer.pad_token_id,
    )


def resolve_from_hf(config: BridgeVLAConfig, hf: PaliGemmaConfig) -> BridgeVLAConfig:
    """``config`` with its backbone fields set from a loaded PaliGemma config; explicit disagreements raise."""
    v, t = hf.vision_config, hf.text_config
    actual = dict(
        image_size=v.image_size, patch_size=v.patch_size, vision_hidden_size=v.hidden_size,
        vision_layers=v.num_hidden_layers, vision_heads=v.num_attention_heads,
        vision_intermediate_size=v.intermediate_size, text_hidden_size=t.hidden_size,
        text_layers=t.num_hidden_layers, text_heads=t.num_attention_heads, text_kv_heads=t.num_key_value_heads,
        text_head_dim=t.head_dim, text_intermediate_size=t.intermediate_size, vocab_size=t.vocab_size,
    )
    assert set(actual) == set(BACKBONE_FIELDS)
    for name, value in actual.items():
        given = getattr(config, name)
        if given is not None and given != value:
            raise ValueError(f"{name}={given} disagrees with the backbone at {config.backbone_path} ({value})")
    return dataclasses.replace(config, **actual)


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def _build(hf: PaliGemmaConfig, dtype: torch.dtype) -> PaliGemmaForConditionalGeneration:
    """Random-init model created directly in ``dtype``: the 3B size never exists in float32 (13 GB) on the way."""
    with _default_dtype(dtype):
        model = PaliGemmaForConditionalGeneration(hf)
    return model.to(dtype)  # anything created with an explicit dtype


def build_backbone_parts(
    config: BridgeVLAConfig,
    hf_config_json: dict | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
) -> tuple[PaliGemmaForConditionalGeneration, PreTrainedTokenizerBase, BridgeVLAConfig]:
    """The PaliGemma model, its tokenizer, and ``config`` resolved against them.

    - ``hf_config_json`` + ``tokenizer`` given (loading one of our checkpoints): architecture from the JSON, random
      weights that the caller overwrites.
    - ``config.backbone_path`` set: ``PaliGemmaForConditionalGeneration.from_pretrained`` + the real
      ``PaliGemmaProcessor`` from that folder (exactly what a user does with a real checkpoint).
    - otherwise: a random-init model of the preset's sizes and the offline tokenizer.
    """
    dtype = DTYPES[config.dtype]
    if hf_config_json is not None:
        if tokenizer is None:
            raise ValueError("tokenizer is required with hf_config_json")
        hf = PaliGemmaConfig.from_dict(hf_config_json)
        hf._attn_implementation = config.attn_implementation
        model = _build(hf, dtype)
        return model.to(dtype), tokenizer, config
    if config.backbone_path:
        path = Path(config.backbone_path)
        if not (path / "config.json").is_file():
            raise ValueError(f"backbone_path {path} does not hold a Hugging Face model (no config.json)")
        model = PaliGemmaForConditionalGeneration.from_pretrained(
            path, dtype=dtype, attn_implementation=config.attn_implementation
        )
        processor = PaliGemmaProcessor.from_pretrained(path)
        ip = processor.image_processor
        resolved = resolve_from_hf(config, model.config)
        resolved = dataclasses.replace(
            resolved,
            image_mean=tuple(float(x) for x in ip.image_mean),
            image_std=tuple(float(x) for x in ip.image_std),
        )
        tok = processor.tokenizer
        if image_token_id(tok) != model.config.image_token_id:
            raise ValueError(f"backbone_path {path}: the processor's <image> id differs from the model's")
        return model, tok, resolved
    tok = tokenizer or build_offline_tokenizer(config.tokenizer_vocab_size, config.tokenizer_extra_text)
    hf = paligemma_config(config, tok)
    hf._attn_implementation = config.attn_implementation
    model = _build(hf, dtype)
    return model.to(dtype), tok, dataclasses.replace(config, vocab_size=hf.text_config.vocab_size)


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """A tokenizer saved with ``save_pretrained`` (JSON files only; no pickle, no remote code)."""
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True, trust_remote_code=False)


class Backbone(nn.Module):
    """Views (B, V, C, H, W) in [0, 1] + prompt ids → last-layer image-token features (B, V, D, g, g)."""

    def __init__(self, model: PaliGemmaForConditionalGeneration, config: BridgeVLAConfig) -> None:
        super().__init__()
        self.model = model
        self.image_size = int(config.image_size)
        self.grid = config.grid_size
        self.hidden_size = int(model.config.text_config.hidden_size)
        n_extra = config.num_view_channels - 3
        # Extra channels (depth, xyz) enter through a zero-initialised 1x1 conv added to the normalised RGB, so the
        # pretrained patch embedding is untouched at initialisation and learns to use them only if they help.
        self.extra_adapter = nn.Conv2d(n_extra, 3, 1) if n_extra else None
        if self.extra_adapter is not None:
            nn.init.zeros_(self.extra_adapter.weight)
            nn.init.zeros_(self.extra_adapter.bias)
        self.register_buffer("mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)
        if config.gradient_checkpointing:
            model.gradient_checkpointing_enable()

    @property
    def dtype(self) -> torch.dtype:
        return self.model.model.multi_modal_projector.linear.weight.dtype

    def pixel_values(self, views: Tensor) -> Tensor:
        """(B, V, C, H, W) in [0, 1] → normalised (B·V, 3, H, W) in the backbone's dtype."""
        b, v, c, h, w = views.shape
        x = views.reshape(b * v, c, h, w).float()
        rgb = (x[:, :3] - self.mean) / self.std
        if self.extra_adapter is not None:
            rgb = rgb + self.extra_adapter(x[:, 3:].to(self.extra_adapter.weight.dtype)).float()
        return rgb.to(self.dtype)

    def forward(self, views: Tensor, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        if views.ndim != 5 or views.shape[-1] != self.image_size or views.shape[-2] != self.image_size:
            raise ValueError(f"views must be (B, V, C, {self.image_size}, {self.image_size}), got {tuple(views.shape)}")
        b, v = views.shape[:2]
        n_img = v * self.grid * self.grid
        if input_ids.shape[0] != b or input_ids.shape[1] <= n_img:
            raise ValueError(f"input_ids must be (B={b}, L > {n_img}), got {tuple(input_ids.shape)}")
        out = self.model.model(
            input_ids=input_ids,
            pixel_values=self.pixel_values(views),
            attention_mask=attention_mask,
            # Everything is prefix (images + instruction): one bidirectional block; padding stays masked as keys.
            token_type_ids=torch.zeros_like(input_ids),
            use_cache=False,
        )
        # Right-padded prompts put the image tokens first, in view order, patches row-major.
        tokens = out.last_hidden_state[:, :n_img]  # (B, V·g·g, D)
        return tokens.reshape(b, v, self.grid, self.grid, -1).permute(0, 1, 4, 2, 3)

    def hf_config_dict(self) -> dict:
        return json.loads(self.model.config.to_json_string(use_diff=False))
