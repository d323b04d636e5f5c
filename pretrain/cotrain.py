"""Co-training: the heatmap pre-training's synthetic grounding scenes kept in every fine-tuning batch.

Why: pre-training in the policy's three-view format teaches the backbone to find the named object (on the demo's
held-out lift_block scenes, the first keypose's stage-1 point lands on the named block in 80 % of fresh scenes
before any demo is seen), but fitting ten demos per task erodes it: 1300 fine-tuning steps later the same measure
was 50 % — the policy starts memorising the demos' layouts instead of reading the colour word (docs/training.md).
Showing a few synthetic scenes per step keeps the skill exercised at the cost of a smaller demo share per batch.

``SyntheticGrounding`` implements ``bridgevla.training.job.AuxiliaryTask``: micro-batch k is ``generate_scenes`` seeded
by (seed, k) alone (resumes replay it), and its loss is the policy's own two-stage, three-view heatmap loss
(``BridgeVLAPolicy.heatmap_terms``) — the same objective as ``views: policy`` pre-training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from bridgevla.configuration import to_dict
from bridgevla.model.policy import HeatmapSamples
from bridgevla.training.loop import trainer_rank
from pretrain.job import SceneBatches
from pretrain.scenes import SceneBatch, SceneConfig

# Co-training draws pre-training's scene stream (pretrain.job.SceneBatches) with its seed shifted by this, so the
# fine-tuning sees scenes neither pre-training's batches nor its held-out scenes used.
COTRAIN_SEED_OFFSET = 7_777_777


@dataclass
class CotrainConfig:
    enabled: bool = False
    batch_size: int = 2  # synthetic scenes per micro-batch, next to train.batch_size demo samples
    weight: float = 1.0  # multiplies the scenes' heatmap loss (both stages) before it is added to the policy's
    # The scenes in the demos' backbone pass (BridgeVLAPolicy.compute_loss(extra=...)) instead of a second pass of
    # their own: the same losses and gradients (tested), 0.94x the time per step on the idle 2-core EPYC and 0.78x
    # on a loaded one (docs/PERFORMANCE.md). The stage-1 noise is drawn in another order, so a run is not
    # bit-identical to a two-pass one; the demo's success with it, three seeds: 96.3 +- 0.3 % against 97.0 +- 1.3
    # (docs/training.md, run 26). False: the earlier two-pass computation.
    one_pass: bool = True
    scenes: SceneConfig = field(default_factory=SceneConfig)

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"cotrain.batch_size must be >= 1, got {self.batch_size}")
        if not self.weight > 0:
            raise ValueError(f"cotrain.weight must be > 0, got {self.weight}")


class SyntheticGrounding:
    """The auxiliary task (see the module doc)."""

    name = "grounding"

    def __init__(self, cfg: CotrainConfig, seed: int) -> None:
        self.cfg, self.seed = cfg, seed
        # per DDP rank, as the demos are: ranks never train on the same scenes
        self.scenes = SceneBatches(cfg.scenes, cfg.batch_size, seed + COTRAIN_SEED_OFFSET, rank=trainer_rank())

    def batch(self, k: int) -> SceneBatch:
        return self.scenes.batch(k)

    def loss(self, policy: Any, batch: SceneBatch) -> dict[str, Tensor]:
        terms, _, _ = policy.heatmap_terms(batch.points, batch.colors, batch.mask, batch.target, batch.instructions)
        return self.heatmap_loss(terms)

    def heatmap_samples(self, batch: SceneBatch) -> HeatmapSamples | None:
        """The scenes as samples for the demos' own backbone pass (``one_pass``), else ``None`` (a pass of their
        own through :meth:`loss`)."""
        if not self.cfg.one_pass:
            return None
        return HeatmapSamples(batch.points, batch.colors, batch.mask, batch.target, list(batch.instructions))

    def heatmap_loss(self, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        """The weighted loss of the scenes' two translation terms, whichever pass computed them."""
        return {"loss": self.cfg.weight * sum(terms.values()), **terms}

    def describe(self) -> dict[str, Any]:
        return {"seed": self.seed, **to_dict(self.cfg)}
