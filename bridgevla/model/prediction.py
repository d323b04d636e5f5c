"""``Prediction``: what ``BridgeVLAPolicy.predict`` returns — keyposes as tensors plus what each stage saw and
predicted (views and heatmaps), for visualisation and debugging."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from benchmarks.protocol import Keypose


@dataclass
class Prediction:
    position: Tensor  # (B, 3) world metres
    quaternion: Tensor  # (B, 4) xyzw, w >= 0
    gripper_open: Tensor  # (B,) bool
    ignore_collisions: Tensor  # (B,) bool
    rotation_bins: Tensor  # (B, 3) long, extrinsic xyz Euler bins
    gripper_open_prob: Tensor  # (B,) float
    ignore_collisions_prob: Tensor  # (B,) float
    stage1_position: Tensor  # (B, 3) world metres: the centre of the stage-2 zoom
    views: list[Tensor]  # per stage: (B, 3 views, C, S, S) rendered inputs (RGB first)
    heatmaps: list[Tensor]  # per stage: (B, 3 views, S, S) probabilities, each view sums to 1
    cube_points: list[Tensor]  # per stage: (B, 3) decoded point in that stage's own (zoomed) cube frame

    def __len__(self) -> int:
        return self.position.shape[0]

    def keyposes(self) -> list[Keypose]:
        pos = self.position.detach().double().cpu().numpy()
        quat = self.quaternion.detach().double().cpu().numpy()
        grip = self.gripper_open.detach().cpu().numpy()
        coll = self.ignore_collisions.detach().cpu().numpy()
        return [Keypose(pos[i], quat[i], bool(grip[i]), bool(coll[i])) for i in range(len(self))]
