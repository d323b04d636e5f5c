"""``BridgeVLAPolicy``: two-stage (coarse-to-fine) BridgeVLA on a PaliGemma backbone.

Stage 1 renders the whole cube into three orthographic views and predicts one heatmap per view; the multi-view
fusion of ``rendering`` turns them into a 3D point. Stage 2 zooms ×4 around that point (around the truth plus noise in
training), re-renders, predicts fine heatmaps with the *same* backbone and head, and reads rotation, gripper and
collision from its token grids. All geometry comes from ``rendering``; this module only wires it.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from benchmarks.fileio import atomic_write_text, fsync_dir, fsync_tree
from benchmarks.protocol import Keypose, Observation
from bridgevla.data.batch import PolicyBatch, collate
from bridgevla.data.preprocess import (
    add_memory_markers,
    as_bounds,
    empty_cloud_reason,
    observation_cloud,
    subsample_cloud,
)
from bridgevla.model.backbone import Backbone, build_backbone_parts, load_tokenizer, resolve_from_hf
from bridgevla.model.checkpoint import (
    BACKBONE_CONFIG,
    CONFIG,
    TOKENIZER_DIR,
    WEIGHTS,
    CheckpointError,
    verify_checkpoint,
    write_manifest,
)
from bridgevla.model.config import RUNTIME_FIELDS, BridgeVLAConfig
from bridgevla.model.heads import ActionHead, ConvexUpsampleHead, heatmap_probs, soft_cross_entropy
from bridgevla.model.prediction import Prediction
from bridgevla.model.tokenizer import encode_prompts
from rendering import (
    NUM_VIEWS,
    bins_to_quaternion,
    clamp_to_bounds,
    crop_to_bounds,
    cube_to_world,
    fuse_heatmaps,
    gaussian_targets,
    matrix_to_quaternion,
    project,
    quaternion_to_bins,
    quaternion_to_matrix,
    render,
    rotation_6d_to_matrix,
    unzoom,
    world_to_cube,
    zoom,
)

__all__ = ["BridgeVLAPolicy", "PolicyBatch", "Prediction", "collate"]

# Parameter-name prefixes, for freezing (the reference freezes the vision tower and the token embeddings; the
# lm_head is tied to the embeddings and never used).
VISION_TOWER_PREFIX = "backbone.model.model.vision_tower."
EMBEDDINGS_PREFIX = "backbone.model.model.language_model.embed_tokens."


class EmptyCloudError(ValueError):
    """An observation has no usable point inside the policy's bounds (the message says why)."""


class BridgeVLAPolicy(nn.Module):
    """See the module docstring. ``device`` builds the weights directly there (useful for the 3B size on a GPU)."""

    def __init__(
        self,
        config: BridgeVLAConfig,
        device: torch.device | str | None = None,
        *,
        _hf_config: dict | None = None,
        _tokenizer=None,
    ) -> None:
        super().__init__()
        if not isinstance(config, BridgeVLAConfig):
            raise ValueError(f"config must be a BridgeVLAConfig, got {type(config).__name__}")
        # Build straight on the target device (no 12 GB CPU detour for the 3B size), except when transformers' own
        # from_pretrained loads a real checkpoint: it manages devices itself.
        loads_hf = bool(config.backbone_path) and _hf_config is None
        with contextlib.nullcontext() if device is None or loads_hf else torch.device(device):
            model, tokenizer, resolved = build_backbone_parts(config, _hf_config, _tokenizer)
            self.config = resolved
            self.tokenizer = tokenizer
            self.bounds = as_bounds(resolved.bounds)
            self.backbone = Backbone(model, resolved)
            d = self.backbone.hidden_size
            self.heatmap_head = ConvexUpsampleHead(d, resolved.head_hidden_size, resolved.patch_size)
            self.action_head = ActionHead(
                d, NUM_VIEWS, list(resolved.action_hidden_sizes), resolved.num_rotation_bins,
                resolved.rotation_pe_frequencies, resolved.rotation_head,
            )
        # Heads share the backbone's dtype so bf16 features never meet fp32 weights; the extra-channel adapter too.
        dtype = self.backbone.dtype
        self.heatmap_head.to(dtype)
        self.action_head.to(dtype)
        if self.backbone.extra_adapter is not None:
            self.backbone.extra_adapter.to(dtype)
        if device is not None:
            self.to(device)
        self._compiled_heatmap_logits = self._apply_compile()

    def _apply_compile(self):  # -> the compiled heatmap_logits, or None
        """``config.compile``: "layers" compiles every transformer layer of the backbone in place (state-dict keys
        unchanged; identical layers reuse one compiled graph); "model" returns a compiled backbone + heatmap head,
        which both stages call with the same shapes (static prompts), so it is compiled once per batch size."""
        cfg = self.config
        if cfg.compile == "layers":
            for name, module in self.backbone.model.named_modules():
                if isinstance(module, nn.ModuleList) and name.endswith("layers"):
                    for layer in module:
                        layer.compile(mode=cfg.compile_mode, dynamic=False)
        if cfg.compile == "model":
            return torch.compile(self._heatmap_logits, mode=cfg.compile_mode, dynamic=False)
        return None

    # ------------------------------------------------------------------ basics
    @property
    def device(self) -> torch.device:
        return self.backbone.mean.device

    @property
    def image_size(self) -> int:
        return int(self.config.image_size)

    def freeze(self, vision_tower: bool = False, embeddings: bool = False) -> list[str]:
        """Set ``requires_grad=False`` on the named parts; returns the frozen parameter names."""
        prefixes = ([VISION_TOWER_PREFIX] if vision_tower else []) + ([EMBEDDINGS_PREFIX] if embeddings else [])
        frozen = []
        for name, p in self.named_parameters():
            if any(name.startswith(pre) for pre in prefixes):
                p.requires_grad_(False)
                frozen.append(name)
        return frozen

    def encode_instructions(self, instructions: Sequence[str], num_images: int = NUM_VIEWS) -> tuple[Tensor, Tensor]:
        cfg = self.config
        g = cfg.grid_size
        return encode_prompts(self.tokenizer, list(instructions), num_images, g * g, cfg.max_text_tokens, self.device,
                              pad_to_max=cfg.static_shapes or cfg.compile != "none")

    def render_views(self, points: Tensor, colors: Tensor, mask: Tensor) -> Tensor:
        """Cube-frame clouds (B, N, 3) → model input views (B, 3, C, S, S): RGB, then the extra channels."""
        r = render(points, colors, mask, self.image_size, self.config.splat_radius)
        chans = [r.features]
        for name in self.config.extra_channels:
            chans.append(r.depth[:, :, None] if name == "depth" else r.xyz)
        return torch.cat(chans, dim=2)

    def heatmap_logits(self, views: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Views (B, V, C, S, S) → token grids (B, V, D, g, g) and heatmap logits (B, V, S, S) (float32)."""
        compiled = self._compiled_heatmap_logits
        if not (views.is_cuda and self.config.compile != "none"
                and self.config.compile_mode in ("reduce-overhead", "max-autotune")):
            return (compiled or self._heatmap_logits)(views, input_ids, attention_mask)
        # CUDA graphs: both stages replay the same graphs, so each call is a new step for torch's graph trees, and the
        # outputs of a whole-model graph live in its memory pool, which the next replay overwrites: keep copies
        # (small next to the backbone's work). Per-layer graphs end in eager ops, whose outputs are ordinary.
        torch.compiler.cudagraph_mark_step_begin()
        if compiled is None:
            return self._heatmap_logits(views, input_ids, attention_mask)
        feats, logits = compiled(views, input_ids, attention_mask)
        return feats.clone(), logits.clone()

    def _heatmap_logits(self, views: Tensor, input_ids: Tensor, attention_mask: Tensor) -> tuple[Tensor, Tensor]:
        feats = self.backbone(views, input_ids, attention_mask)
        b, v = feats.shape[:2]
        logits = self.heatmap_head(feats.flatten(0, 1)).float()
        return feats, logits.view(b, v, *logits.shape[-2:])

    def heatmap_logits_2d(self, images: Tensor, instructions: Sequence[str]) -> Tensor:
        """Single-image 2D heatmaps (the heatmap pre-training task): images (B, C, S, S) in [0, 1] + one prompt each
        → logits (B, S, S). Same backbone and head as the 3D policy."""
        if images.ndim != 4:
            raise ValueError(f"images must be (B, C, H, W), got {tuple(images.shape)}")
        ids, attn = self.encode_instructions(instructions, num_images=1)
        return self.heatmap_logits(images.to(self.device)[:, None], ids, attn)[1][:, 0]

    def _cube_cloud(self, batch: PolicyBatch) -> tuple[Tensor, Tensor, Tensor]:
        points = batch.points.float()
        # Belt and braces: samples went through prepare_cloud, but augmentation may push points out of the bounds.
        mask = batch.mask & crop_to_bounds(points, self.bounds)
        pts = world_to_cube(torch.where(mask[..., None], points, torch.zeros_like(points)), self.bounds)
        return pts, batch.colors.float(), mask

    # ------------------------------------------------------------------ training
    def heatmap_terms(
        self, points: Tensor, colors: Tensor, mask: Tensor, target: Tensor, instructions: Sequence[str]
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """The translation losses of both stages for cube-frame clouds (B, N, 3) and cube-frame targets (B, 3):
        ``{"trans_stage1", "trans_stage2"}``, plus the stage-2 token grids (B, V, D, g, g) and the target in the
        zoomed frame (B, 3) that the action head reads. Shared by policy training and heatmap pre-training.

        Stage 2 is centred on the truth plus uniform noise, so it learns to recover from stage-1 errors; both stages
        are independent given that centre, which lets one backbone call process the 2B views."""
        return self._heatmap_terms(points, colors, mask, target, instructions, points.shape[0])

    def _heatmap_terms(
        self, points: Tensor, colors: Tensor, mask: Tensor, target: Tensor, instructions: Sequence[str], split: int
    ) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """``heatmap_terms`` with the batch in two groups: samples ``[:split]`` give ``trans_stage1/2`` and samples
        ``[split:]`` (if any) ``extra_trans_stage1/2``, each the mean over its own group — the two groups' losses
        exactly as two calls would give them (one backbone pass instead of two: ``compute_loss(extra=…)``)."""
        cfg, s, b = self.config, self.image_size, points.shape[0]
        center = target + (torch.rand_like(target) * 2 - 1) * cfg.stage1_noise
        target2 = zoom(target, center, cfg.zoom_factor)
        views = self.render_views(
            torch.cat([points, zoom(points, center, cfg.zoom_factor)]), torch.cat([colors, colors]),
            torch.cat([mask, mask]),
        )
        ids, attn = self.encode_instructions(instructions)
        feats, logits = self.heatmap_logits(views, ids.repeat(2, 1), attn.repeat(2, 1))
        goals = gaussian_targets(torch.cat([target, target2]), s, cfg.heatmap_sigma, cfg.heatmap_cutoff)
        terms = {"trans_stage1": soft_cross_entropy(logits[:split], goals[:split]),
                 "trans_stage2": soft_cross_entropy(logits[b:b + split], goals[b:b + split])}
        if split < b:
            terms |= {"extra_trans_stage1": soft_cross_entropy(logits[split:b], goals[split:b]),
                      "extra_trans_stage2": soft_cross_entropy(logits[b + split:], goals[b + split:])}
        return terms, feats[b:b + split], target2[:split]

    def compute_loss(self, batch: PolicyBatch, extra: HeatmapSamples | None = None) -> dict[str, Tensor]:
        """Total ``loss`` and each term: ``trans_stage1``, ``trans_stage2`` (soft CE over pixels, mean over views),
        ``rot_x``, ``rot_y``, ``rot_z``, ``gripper``, ``collision`` (cross-entropies). Equal weights, as the
        reference. Random draws (stage-1 noise, bin noise) use torch's global generator, so seeding reproduces.

        ``extra``: heatmap-only samples (co-training's synthetic scenes) that ride in the same backbone pass; their
        two translation losses come back as ``extra_trans_stage1/2`` and are *not* added to ``loss`` (the caller
        weights them). This saves a second pass's fixed cost — 0.94x the step time on an idle 2-core CPU, 0.78x on a
        loaded one (docs/PERFORMANCE.md); the terms equal those of a separate ``heatmap_terms`` call."""
        if not isinstance(batch, PolicyBatch):
            raise ValueError(f"batch must be a PolicyBatch, got {type(batch).__name__}")
        if not batch.has_targets:
            raise ValueError("batch has no targets (collate samples that carry target_* fields)")
        cfg, s, b = self.config, self.image_size, len(batch)
        batch = batch.to(self.device)
        pts, colors, mask = self._cube_cloud(batch)
        target = world_to_cube(batch.target_position.float(), self.bounds)
        instructions = list(batch.instructions)
        if extra is not None:
            pts, colors, mask, target = _concat_clouds((pts, colors, mask, target), extra.to(self.device))
            instructions += list(extra.instructions)
        trans, feats2, target2 = self._heatmap_terms(pts, colors, mask, target, instructions, b)
        extra_terms = {k: trans.pop(k) for k in [k for k in trans if k.startswith("extra_")]}

        nb = cfg.num_rotation_bins
        inputs = ActionHead.gather_inputs(feats2, project(target2, s)[..., :2], s)
        if cfg.rotation_head == "6d":
            out = self.action_head(inputs, None)
            true_m = quaternion_to_matrix(batch.target_quaternion.float())
            # Squared Frobenius distance of the matrices: smooth, no sign ambiguity (q and -q give one matrix).
            rot_terms = {"rot_6d": (rotation_6d_to_matrix(out["rotation6d"].float()) - true_m).square()
                         .sum((-2, -1)).mean()}
        else:
            true_bins = quaternion_to_bins(batch.target_quaternion.float(), nb).to(self.device)
            lo, hi = cfg.rotation_bin_noise
            noisy = (true_bins + torch.randint(lo, hi + 1, true_bins.shape, device=self.device)) % nb
            out = self.action_head(inputs, noisy)
            rot = F.cross_entropy(out["rotation"].float().reshape(-1, nb), true_bins.reshape(-1), reduction="none")
            rot = rot.view(b, 3).mean(0)
            rot_terms = {"rot_x": rot[0], "rot_y": rot[1], "rot_z": rot[2]}
        grip = F.cross_entropy(out["gripper"].float(), (batch.target_gripper_open > 0.5).long())
        coll = F.cross_entropy(out["collision"].float(), (batch.target_ignore_collisions > 0.5).long())
        terms = {**trans, **rot_terms, "gripper": grip, "collision": coll}
        return {"loss": sum(terms.values()), **terms, **extra_terms}

    def forward(self, batch: PolicyBatch) -> dict[str, Tensor]:
        """``compute_loss``, so that generic wrappers (DDP, torch.compile, peft) that call ``forward`` work."""
        return self.compute_loss(batch)

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, batch: PolicyBatch) -> Prediction:
        """Both stages with the predicted stage-1 point as the zoom centre; greedy rotation decode."""
        if not isinstance(batch, PolicyBatch):
            raise ValueError(f"batch must be a PolicyBatch, got {type(batch).__name__}")
        batch = batch.to(self.device)
        ids, attn = self.encode_instructions(batch.instructions)
        return self.predict_on_device(batch, ids, attn)

    @torch.no_grad()
    def predict_on_device(self, batch: PolicyBatch, input_ids: Tensor, attention_mask: Tensor) -> Prediction:
        """:meth:`predict` once the batch and the prompts are on the policy's device. From here to the returned
        ``Prediction`` nothing is read back to the host or copied from it (on a GPU: no synchronisation, the whole
        keypose is queued at once; the GPU benchmark checks this with CUDA's sync debug mode)."""
        cfg, s = self.config, self.image_size
        grid_res = cfg.decode_grid_res or s
        ids, attn = input_ids, attention_mask
        pts, colors, mask = self._cube_cloud(batch)
        views1 = self.render_views(pts, colors, mask)
        _, logits1 = self.heatmap_logits(views1, ids, attn)
        _check_finite(logits1, "stage 1")
        heat1 = heatmap_probs(logits1)
        p1 = fuse_heatmaps(heat1, grid_res)
        views2 = self.render_views(zoom(pts, p1, cfg.zoom_factor), colors, mask)
        feats2, logits2 = self.heatmap_logits(views2, ids, attn)
        _check_finite(logits2, "stage 2")
        heat2 = heatmap_probs(logits2)
        p2z = fuse_heatmaps(heat2, grid_res)
        dec = self.action_head.decode(ActionHead.gather_inputs(feats2, project(p2z, s)[..., :2], s))
        grip = dec["gripper"].float().softmax(-1)[:, 1]
        coll = dec["collision"].float().softmax(-1)[:, 1]
        if cfg.rotation_head == "6d":
            quat = matrix_to_quaternion(rotation_6d_to_matrix(dec["rotation6d"].float()))
            bins = quaternion_to_bins(quat, cfg.num_rotation_bins)
        else:
            quat, bins = bins_to_quaternion(dec["bins"], cfg.num_rotation_bins).float(), dec["bins"]
        # The stage-2 point unzooms up to 1/zoom_factor cube units past the cube, and the cube reaches past the bounds
        # on their shorter sides: clamp into the bounds, the policy's workspace (the one clamp of the workspace guard).
        requested = cube_to_world(unzoom(p2z, p1, cfg.zoom_factor), self.bounds)
        return Prediction(
            position=clamp_to_bounds(requested, self.bounds),
            requested_position=requested,
            quaternion=quat,
            gripper_open=grip > 0.5,
            ignore_collisions=coll > 0.5,
            rotation_bins=bins,
            gripper_open_prob=grip,
            ignore_collisions_prob=coll,
            stage1_position=cube_to_world(p1, self.bounds),
            views=[views1, views2],
            heatmaps=[heat1, heat2],
            cube_points=[p1, p2z],
        )

    def input_cloud(self, observation: Observation, history: Sequence[Keypose] | None = None,
                    cloud: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The world cloud ``act()`` feeds the model for ``observation``: the policy's cameras through the shared
        preprocessing (cropped to the bounds), then the training point budget with one fixed seed for every
        observation, so the same observation gives the same keypose alone or anywhere in a batch, then (memory
        policies only) the markers of ``history``, the keyposes executed so far. Returns points (N, 3) float32 world
        metres and colours (N, 3) float32 in [0, 1]. Raises :class:`EmptyCloudError` when no point is usable.
        ``cloud``: the observation's cropped cloud when the caller already built it (:meth:`observation_cloud`)."""
        cameras = list(self.config.cameras) or None
        points, colors = cloud if cloud is not None else observation_cloud(observation, self.bounds, cameras)
        if len(points) == 0:  # checked before the memory markers, which are not seen points
            raise EmptyCloudError(empty_cloud_reason(observation, self.bounds, cameras))
        points, colors = subsample_cloud(points, colors, self.config.max_points, np.random.default_rng(0))
        return add_memory_markers(points, colors, [(k.position, k.gripper_open) for k in history or []],
                                  self.config.memory_markers())

    def observation_cloud(self, observation: Observation) -> tuple[np.ndarray, np.ndarray]:
        """The first step of :meth:`input_cloud`: the policy's cameras back-projected and cropped to its bounds.
        A caller that needs the cloud anyway (the server rejects a request with no point inside the bounds before
        queueing it) passes it to :meth:`act` (``clouds``), so it is built once."""
        return observation_cloud(observation, self.bounds, list(self.config.cameras) or None)

    @torch.no_grad()
    def act(
        self, observation: Observation | Sequence[Observation], return_prediction: bool = False,
        history: Sequence[Keypose] | Sequence[Sequence[Keypose]] | None = None,
        clouds: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> Keypose | list[Keypose] | tuple[Keypose | list[Keypose], Prediction]:
        """Observation(s) → next keypose(s), through the shared preprocessing (``prepare_cloud``); the first
        instruction phrasing is the prompt. ``return_prediction`` also returns the views and heatmaps.

        ``history``: the keyposes executed so far in the episode, oldest first (one list per observation when
        ``observation`` is a list). Used only by a policy with ``memory_keyposes > 0``, which draws the last ones into
        the cloud as it was trained to; None or empty = the episode's first keypose.

        ``clouds``: each observation's :meth:`observation_cloud`, when the caller already built them (one per
        observation, in order); None builds them here."""
        single = isinstance(observation, Observation)
        observations = [observation] if single else list(observation)
        if not observations or not all(isinstance(o, Observation) for o in observations):
            raise ValueError("observation must be an Observation or a non-empty list of Observations")
        histories = [list(history or [])] if single else (list(history) if history is not None
                                                           else [[] for _ in observations])
        if len(histories) != len(observations):
            raise ValueError(f"history must hold one keypose list per observation ({len(observations)}), "
                             f"got {len(histories)}")
        if clouds is not None and len(clouds) != len(observations):
            raise ValueError(f"clouds must hold one cloud per observation ({len(observations)}), got {len(clouds)}")
        samples = []
        for i, obs in enumerate(observations):
            if not isinstance(obs.instructions, (list, tuple)) or not obs.instructions:
                raise ValueError(f"observation[{i}].instructions must be a non-empty list of strings")
            try:
                points, colors = self.input_cloud(obs, histories[i], None if clouds is None else clouds[i])
            except EmptyCloudError as e:  # a keypose guessed from an empty picture must never reach an arm
                raise ValueError(f"observation[{i}] has no usable points: {e}") from None
            samples.append({"points": points, "colors": colors, "instruction": obs.instructions[0]})
        pred = self.predict(collate(samples))
        keyposes = pred.keyposes()
        out = keyposes[0] if single else keyposes
        return (out, pred) if return_prediction else out

    # ------------------------------------------------------------------ save / load
    def export_state_dict(self) -> dict[str, Tensor]:
        """The state dict of a plain policy: LoRA adapters that training injected (peft) are merged into their base
        weights, so :meth:`from_pretrained` loads a LoRA fine-tune into a policy built from its config alone. The
        live model is not modified."""
        state = self.state_dict()
        lora = {name: m for name, m in self.named_modules() if _is_lora_layer(m)}
        if not lora:
            return state
        out = {k: v for k, v in state.items()
               if not any(k.startswith(name + ".") for name in lora)}
        for name, m in lora.items():
            base = m.get_base_layer()
            weight = base.weight.detach()
            if not m.merged:  # merged adapters are already inside base.weight
                for adapter in m.active_adapters:
                    if adapter in m.lora_A:
                        weight = weight + m.get_delta_weight(adapter).to(weight.dtype)
            out[f"{name}.weight"] = weight
            if getattr(base, "bias", None) is not None:
                out[f"{name}.bias"] = base.bias.detach()
        return out

    def _tied_keys(self, state: dict[str, Tensor] | None = None) -> set[str]:
        """State-dict keys whose tensor is the same storage as an earlier key's (the tied lm_head)."""
        seen, tied = set(), set()
        for k, v in (self.state_dict() if state is None else state).items():
            ptr = (v.device, v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape))
            if ptr in seen:
                tied.add(k)
            seen.add(ptr)
        return tied

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write the policy (see ``bridgevla.model.checkpoint``), LoRA adapters merged (:meth:`export_state_dict`).
        Built in a sibling temp dir, fsync'd and renamed into place; the previous policy is kept as ``<dir>.old``
        until the new one is in place, so a kill at any instant leaves one complete policy."""
        final = Path(directory)
        tmp = final.with_name(final.name + ".saving")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        exported = self.export_state_dict()
        tied = self._tied_keys(exported)
        state = {k: v.detach().to("cpu").contiguous() for k, v in exported.items() if k not in tied}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "bridgevla-policy"})
        atomic_write_text(tmp / CONFIG, json.dumps(self.config.to_dict(), indent=1))
        atomic_write_text(tmp / BACKBONE_CONFIG, json.dumps(self.backbone.hf_config_dict(), indent=1))
        self.tokenizer.save_pretrained(str(tmp / TOKENIZER_DIR))
        write_manifest(tmp)
        fsync_tree(tmp)
        old = final.with_name(final.name + ".old")
        if final.exists():
            shutil.rmtree(old, ignore_errors=True)
            final.rename(old)
        tmp.rename(final)
        fsync_dir(final.parent)
        shutil.rmtree(old, ignore_errors=True)
        return final

    @classmethod
    def from_pretrained(cls, directory: str | Path, device: torch.device | str | None = None,
                        **runtime: Any) -> BridgeVLAPolicy:
        """Load a directory written by :meth:`save_pretrained`, after checking every file against the manifest.
        ``runtime``: speed settings to use instead of the saved ones (``RUNTIME_FIELDS``, e.g. ``compile="model",
        compile_mode="reduce-overhead"``); they do not change the maths."""
        unknown = sorted(set(runtime) - set(RUNTIME_FIELDS))
        if unknown:
            raise ValueError(f"from_pretrained: only the runtime settings {list(RUNTIME_FIELDS)} can be overridden, "
                             f"got {unknown}")
        root = Path(directory)
        verify_checkpoint(root)
        try:
            config = BridgeVLAConfig.from_dict(json.loads((root / CONFIG).read_text())).replace(**runtime)
            hf = json.loads((root / BACKBONE_CONFIG).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {root}: bad {CONFIG}/{BACKBONE_CONFIG}: {e}") from e
        _check_backbone_config(root, config, hf)
        policy = cls(config, device=device, _hf_config=hf, _tokenizer=load_tokenizer(root / TOKENIZER_DIR))
        policy.load_weights(root, verify=False)
        return policy

    def load_weights(
        self, directory: str | Path, prefixes: Sequence[str] | None = None, verify: bool = True
    ) -> list[str]:
        """Copy weights from a saved policy into this one: all of them, or only keys starting with ``prefixes``
        (e.g. ``("backbone.", "heatmap_head.")`` after 2D heatmap pre-training). Returns the keys loaded."""
        root = Path(directory)
        if verify:
            verify_checkpoint(root)
        state = load_file(str(root / WEIGHTS), device=str(self.device))
        own = self.state_dict()
        if prefixes is not None:
            state = {k: v for k, v in state.items() if any(k.startswith(p) for p in prefixes)}
        unexpected = sorted(set(state) - set(own))
        if unexpected:
            raise CheckpointError(f"checkpoint {root}: keys unknown to this model: {unexpected[:5]}")
        wrong = [k for k, v in state.items() if tuple(v.shape) != tuple(own[k].shape)]
        if wrong:
            raise CheckpointError(f"checkpoint {root}: shape mismatch for {wrong[:5]} (another preset?)")
        if prefixes is None:
            missing = sorted(set(own) - set(state) - self._tied_keys())
            if missing:
                raise CheckpointError(f"checkpoint {root}: missing weights {missing[:5]}")
        bad = [k for k, v in state.items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(f"checkpoint {root}: non-finite (NaN/inf) weights in {bad[:5]}"
                                  f"{f' and {len(bad) - 5} more' if len(bad) > 5 else ''}; refusing to load them")
        self.load_state_dict({k: v.to(own[k].dtype) for k, v in state.items()}, strict=False)
        return sorted(state)


@dataclass
class HeatmapSamples:
    """Heatmap-only training samples in the cube frame: ``points``/``colors`` (B, N, 3), ``mask`` (B, N), ``target``
    (B, 3), one instruction each (what ``heatmap_terms`` takes; co-training's synthetic scenes)."""

    points: Tensor
    colors: Tensor
    mask: Tensor
    target: Tensor
    instructions: list[str]

    def __post_init__(self) -> None:
        b, n = self.mask.shape[:2] if self.mask.ndim == 2 else (-1, -1)
        if (self.points.shape != (b, n, 3) or self.colors.shape != (b, n, 3) or self.target.shape != (b, 3)
                or len(self.instructions) != b):
            raise ValueError(f"HeatmapSamples: need points/colors (B, N, 3), mask (B, N), target (B, 3) and B "
                             f"instructions; got {tuple(self.points.shape)}, {tuple(self.colors.shape)}, "
                             f"{tuple(self.mask.shape)}, {tuple(self.target.shape)}, {len(self.instructions)}")

    def to(self, device: torch.device) -> HeatmapSamples:
        return HeatmapSamples(self.points.to(device), self.colors.to(device), self.mask.to(device),
                              self.target.to(device), self.instructions)


def _concat_clouds(main: tuple[Tensor, Tensor, Tensor, Tensor],
                   extra: HeatmapSamples) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One batch of both groups' clouds: the shorter padded with masked-out points (the renderer ignores them)."""
    pts, colors, mask, target = main
    n = max(pts.shape[1], extra.points.shape[1])

    def pad(x: Tensor) -> Tensor:
        return torch.cat([x, x.new_zeros((x.shape[0], n - x.shape[1], *x.shape[2:]))], 1) if x.shape[1] < n else x

    return (torch.cat([pad(pts), pad(extra.points.float())]), torch.cat([pad(colors), pad(extra.colors.float())]),
            torch.cat([pad(mask), pad(extra.mask)]), torch.cat([target, extra.target.float()]))


def _is_lora_layer(module: nn.Module) -> bool:
    """A peft LoRA layer (duck-typed: peft is only imported by training when LoRA is enabled)."""
    return all(hasattr(module, a) for a in ("get_base_layer", "get_delta_weight", "lora_A", "merged",
                                            "active_adapters"))


def _check_finite(logits: Tensor, stage: str) -> None:
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(f"the model produced non-finite {stage} heatmap logits (NaN/inf weights, or an overflow in "
                         "reduced precision); no keypose can be decoded")


def _check_backbone_config(root: Path, config: BridgeVLAConfig, hf: dict) -> None:
    """A checkpoint's ``backbone_config.json`` must describe the backbone its checked ``config.json`` describes: a
    crafted one (a terabyte vocabulary, a malformed section) is refused before anything is allocated."""
    from transformers import PaliGemmaConfig

    if not isinstance(hf, dict) or not isinstance(hf.get("vision_config"), dict) or \
            not isinstance(hf.get("text_config"), dict):
        raise CheckpointError(f"checkpoint {root}: {BACKBONE_CONFIG} must hold vision_config and text_config mappings")
    try:
        resolve_from_hf(config, PaliGemmaConfig.from_dict(hf))
    except CheckpointError:
        raise
    except Exception as e:  # noqa: BLE001 - any failure to read a foreign file is a bad checkpoint, named as such
        raise CheckpointError(f"checkpoint {root}: {BACKBONE_CONFIG} does not match {CONFIG} ({type(e).__name__}: "
                              f"{e})") from e
