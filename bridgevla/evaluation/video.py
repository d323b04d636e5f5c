"""Episode videos: one MP4 per evaluation episode (``bridgevla eval ... videos=N``).

One camera (``video_camera``, default the observation's first), upscaled to at least ``MIN_HEIGHT`` pixels (an
integer factor, so that the labels are readable on 128-pixel simulator cameras); the keypose being executed is
drawn in as a frame (x red, y green, z blue, 5 cm) with a dot that is filled when the gripper closes; the top-left
corner names the agent, task, episode and keypose, the bottom-left corner says SUCCESS or FAILURE and why.

Frames: the state after the reset, then every tick the environment records while it executes the keyposes
(:class:`~bridgevla.evaluation.observe.TickRecorder` with images on every tick). An environment without tick
recording gives one observation per keypose, each held for ``fps // 2`` frames. The last frame is held one more
second (``fps`` frames) so that the outcome can be read.

Encoded with PyAV (H.264 in yuv420p, which browsers and every player decode); PyAV is the optional ``[viz]`` extra,
imported only here, and only when videos are asked for.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks.protocol import CameraFrame, Environment, Keypose, Observation
from bridgevla.evaluation.observe import TickRecorder
from rendering import quaternion_to_matrix, world_to_pixels

AXIS_LENGTH = 0.05  # metres: the drawn keypose frame
AXIS_COLOURS = ((230, 40, 40), (40, 200, 40), (60, 110, 255))
KEYPOSE_COLOUR = (255, 220, 0)
OK_COLOUR, FAIL_COLOUR = (60, 220, 90), (255, 70, 60)
MIN_HEIGHT = 384  # pixels


def require_av() -> Any:
    """The ``av`` module (PyAV), or an ImportError that names the install."""
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("episode videos need PyAV: pip install 'bridgevla[viz]' (or av==18.1.0)") from e
    return av


@dataclass
class _Shot:
    """One camera image and where it was taken, plus the keypose being executed (None before the first)."""

    rgb: np.ndarray
    intrinsics: np.ndarray
    extrinsics: np.ndarray
    keypose: Keypose | None
    index: int  # keyposes started so far (1 for the first keypose's ticks)
    repeat: int


def keypose_overlay_pixels(keypose: Keypose, intrinsics: np.ndarray, extrinsics: np.ndarray,
                           axis_length: float = AXIS_LENGTH) -> np.ndarray:
    """(4, 3) ``(u, v, depth)`` in the camera of the keypose's origin and the tips of its x, y, z axes."""
    rot = quaternion_to_matrix(torch.as_tensor(keypose.quaternion, dtype=torch.float64)[None])[0]
    origin = torch.as_tensor(keypose.position, dtype=torch.float64)
    pts = torch.cat([origin[None], origin[None] + axis_length * rot.T])  # rows: origin, tip of x, y, z
    return world_to_pixels(pts, torch.as_tensor(intrinsics, dtype=torch.float64),
                           torch.as_tensor(extrinsics, dtype=torch.float64)).numpy()


@functools.lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=size)


def _fit(draw: Any, text: str, font: Any, width: float) -> str:
    """``text``, cut with an ellipsis to fit ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"


def _label(draw: Any, xy: tuple[float, float], text: str, font: Any, fill: tuple[int, int, int]) -> None:
    box = draw.textbbox(xy, text, font=font)
    draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill=(0, 0, 0, 160))
    draw.text(xy, text, font=font, fill=fill)


def compose_frame(shot: _Shot, title: str, status: str, success: bool, scale: int, keyposes: int = 0) -> np.ndarray:
    """The annotated picture (H·scale, W·scale, 3) uint8, padded to even sizes (H.264 in yuv420p needs them).
    ``keyposes``: the episode's total, shown as "keypose k/n" (k counts from 1)."""
    from PIL import Image, ImageDraw

    h, w = shot.rgb.shape[:2]
    img = Image.fromarray(shot.rgb).resize((w * scale, h * scale), Image.BILINEAR).convert("RGBA")
    layer = Image.new("RGBA", img.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    if shot.keypose is not None:
        uvd = keypose_overlay_pixels(shot.keypose, shot.intrinsics, shot.extrinsics)
        xy = (uvd[:, :2] + 0.5) * scale  # pixel centres sit at integers: the scaled centre of pixel u is (u+.5)·s
        if (uvd[:, 2] > 0).all():  # in front of the camera
            for k in range(3):
                draw.line([tuple(xy[0]), tuple(xy[k + 1])], fill=AXIS_COLOURS[k], width=max(2, scale))
            r = 2 * scale
            box = (xy[0, 0] - r, xy[0, 1] - r, xy[0, 0] + r, xy[0, 1] + r)
            draw.ellipse(box, outline=KEYPOSE_COLOUR, width=max(1, scale // 2),
                         fill=None if shot.keypose.gripper_open else KEYPOSE_COLOUR)
    font = _font(max(11, img.height // 28))
    pad = 6
    _label(draw, (pad, pad), _fit(draw, title, font, img.width - 2 * pad), font, (255, 255, 255))
    step = f"keypose {shot.index}/{keyposes}" if shot.keypose is not None else "start"
    _label(draw, (pad, pad + font.size + 6), step, font, KEYPOSE_COLOUR)
    _label(draw, (pad, img.height - pad - font.size - 2), _fit(draw, status, font, img.width - 2 * pad), font,
           OK_COLOUR if success else FAIL_COLOUR)
    out = np.asarray(Image.alpha_composite(img, layer).convert("RGB"))
    even = np.zeros((out.shape[0] + out.shape[0] % 2, out.shape[1] + out.shape[1] % 2, 3), np.uint8)
    even[: out.shape[0], : out.shape[1]] = out
    return even


def outcome_text(record: dict[str, Any]) -> str:
    n = record.get("keyposes", 0)
    if record.get("success"):
        return f"SUCCESS after {n} keypose{'s' * (n != 1)}"
    return f"FAILURE: {record['error']}" if record.get("error") else f"FAILURE: not solved in {n} keyposes"


def write_mp4(frames: list[np.ndarray], path: str | Path, fps: int) -> Path:
    """Encode RGB frames (all the same even size) as H.264 MP4; written to a temporary file, then renamed."""
    av = require_av()
    if not frames:
        raise ValueError("frames: a video needs at least one frame")
    h, w = frames[0].shape[:2]
    if h % 2 or w % 2 or any(f.shape != (h, w, 3) or f.dtype != np.uint8 for f in frames):
        raise ValueError(f"frames must all be ({h}, {w}, 3) uint8 with even sizes")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".partial.mp4")
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.codec_context.thread_count = 1  # evaluation workers are one per core
        stream.options = {"crf": "20", "preset": "veryfast"}
        for f in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    tmp.replace(path)
    return path


class EpisodeVideo:
    """An :class:`~bridgevla.evaluation.observe.EpisodeObserver` that films one episode (see the module doc)."""

    def __init__(self, path: str | Path, spec: Any, camera: str = "", fps: int = 10) -> None:
        if fps < 1:
            raise ValueError(f"fps must be >= 1, got {fps}")
        self.path, self.spec, self.camera, self.fps = Path(path), spec, camera, fps
        self.shots: list[_Shot] = []
        self.ticks = TickRecorder(image_every=1)
        self.keyposes = 0

    def _add(self, obs: Observation, keypose: Keypose | None, repeat: int) -> None:
        cam: CameraFrame | None = obs.cameras.get(self.camera)
        if cam is not None:
            self.shots.append(_Shot(cam.rgb.copy(), np.asarray(cam.intrinsics), np.asarray(cam.extrinsics), keypose,
                                    self.keyposes, repeat))

    def on_reset(self, env: Environment, observation: Observation) -> None:
        if not self.camera:
            if not observation.cameras:
                raise ValueError("videos: the observation has no cameras to film")
            self.camera = next(iter(observation.cameras))
        elif self.camera not in observation.cameras:
            raise ValueError(f"video_camera: {self.camera!r} is not one of the observation's cameras "
                             f"{sorted(observation.cameras)}")
        self.ticks.start(env)
        self._add(observation, None, 1 if self.ticks.active else max(1, self.fps // 2))

    def on_step(self, env: Environment, keypose: Keypose, observation: Observation, info: dict[str, Any]) -> None:
        self.keyposes += 1
        repeat = 1 if self.ticks.active else max(1, self.fps // 2)
        for obs in self.ticks.segment(env, observation):
            self._add(obs, keypose, repeat)

    def close(self, env: Environment) -> None:
        self.ticks.stop(env)

    def frames(self, record: dict[str, Any]) -> list[np.ndarray]:
        s = self.spec
        title = f"{s.agent} · {s.task} v{s.variation} · seed {s.seed} ep {s.episode}"
        status, ok = outcome_text(record), bool(record.get("success"))
        scale = max(1, -(-MIN_HEIGHT // self.shots[0].rgb.shape[0]))
        out: list[np.ndarray] = []
        for i, shot in enumerate(self.shots):
            frame = compose_frame(shot, title, status, ok, scale, self.keyposes)
            out += [frame] * (shot.repeat + (self.fps if i == len(self.shots) - 1 else 0))
        return out

    def write(self, record: dict[str, Any]) -> Path | None:
        """Encode the episode with its outcome; returns the MP4's path (None when the reset failed: no frames)."""
        if not self.shots:
            return None
        return write_mp4(self.frames(record), self.path, self.fps)
