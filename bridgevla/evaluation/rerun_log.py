"""Writes inspected episodes (``bridgevla.evaluation.inspection``) as a rerun recording: an ``.rrd`` file that
``rerun FILE.rrd`` (or the web viewer) opens later, or a live stream a viewer watches while the episode runs.

rerun (``rerun-sdk``, the optional ``[viz]`` extra) is imported only here. Entity layout, on the ``keypose``
timeline (one value per keypose, plus the end state); docs/inspection.md has the picture:

    instruction                          static text: task, variation, instructions, source
    world/bounds                         static box: the crop bounds
    world/cloud                          the cloud the policy rendered, in its colours
    world/score/stage1, .../stage2       the same points coloured by each stage's fusion score (inferno, min to
                                         max), raw scores in the ``score`` column
    world/stage1, world/zoom             the stage-1 point and the stage-2 zoom cube
    world/predicted, world/reference     keypose frames (axes) with a dot: green = gripper open, red = closed
    world/gripper                        where the arm was when the keypose was asked for
    world/trajectory                     the arm's executed path so far (line strip)
    world/cameras/<name>                 each RGB-D camera: pose, pinhole, image
    views/stage{1,2}/{top,front,side}    the rendered view, its heatmap overlay and the decoded point
    errors/<name>                        per-keypose errors against the reference (scalars)
    status                               per-keypose text: keyposes, probabilities, errors, outcome
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np

from bridgevla.evaluation.inspection import EpisodeHeader, KeyposeStep
from rendering import VIEW_NAMES

TIMELINE = "keypose"
AXIS_LENGTH = 0.08  # metres
OPEN_COLOUR, CLOSED_COLOUR = (40, 220, 80), (235, 50, 50)
PREDICTED_COLOUR, REFERENCE_COLOUR = (255, 200, 0), (80, 160, 255)
HEATMAP_ALPHA = 0.65  # peak opacity of the heatmap overlay


def require_rerun() -> Any:
    """The ``rerun`` module, or an ImportError that names the install."""
    try:
        import rerun
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise ImportError("bridgevla inspect needs rerun: pip install 'bridgevla[viz]' (or rerun-sdk==0.41.0)") from e
    return rerun


def inferno(values: np.ndarray) -> np.ndarray:
    """(...,) values in [0, 1] → (..., 3) uint8 colours of matplotlib's 'inferno' map."""
    from matplotlib import colormaps

    return (colormaps["inferno"](np.clip(values, 0.0, 1.0))[..., :3] * 255).round().astype(np.uint8)


def normalise(values: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] (all zeros when flat): colours show where the belief is highest relative to the rest, which
    is what a peaked (trained) and a nearly flat (untrained) heatmap both need to show."""
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    return (values - lo) / (hi - lo) if hi > lo else np.zeros_like(values)


def heatmap_overlay(heat: np.ndarray) -> np.ndarray:
    """(S, S) probabilities → (S, S, 4) uint8 RGBA: inferno colours, opacity growing with the heat (peak = 0.65)."""
    w = normalise(heat)
    rgba = np.empty((*heat.shape, 4), np.uint8)
    rgba[..., :3] = inferno(w)
    rgba[..., 3] = (HEATMAP_ALPHA * 255 * w).round().astype(np.uint8)
    return rgba


def blueprint(bounds: list[float] | None = None) -> Any:
    """The default layout: left, the scene in its colours above the cloud coloured by the fused heatmap score (a tab
    per stage); right, both stages' three views with their heatmaps, the texts and the error plots. With ``bounds``
    the 3D views start looking at the workspace, obliquely from the +x side and above (not at the far cameras)."""
    import rerun.blueprint as rrb

    eye = None
    if bounds is not None:
        lo, hi = np.asarray(bounds[:3], dtype=np.float64), np.asarray(bounds[3:], dtype=np.float64)
        centre, size = (lo + hi) / 2, float(np.max(hi - lo))
        eye = rrb.EyeControls3D(position=centre + size * np.array([1.5, -0.9, 1.0]), look_target=centre,
                                eye_up=[0.0, 0.0, 1.0])

    views = [rrb.Spatial2DView(origin=f"views/stage{k}/{v}", name=f"stage {k} · {v}")
             for k in (1, 2) for v in VIEW_NAMES]
    keyposes = ["+ world/bounds", "+ world/predicted/**", "+ world/reference/**", "+ world/stage1", "+ world/zoom"]
    scores = [rrb.Spatial3DView(origin="world", name=f"fused heatmap score · stage {k}", eye_controls=eye,
                                contents=[f"+ world/score/stage{k}/**", *keyposes]) for k in (1, 2)]
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Vertical(rrb.Spatial3DView(origin="world", name="scene", contents=["+ world/**", "- world/score/**"],
                                           eye_controls=eye),
                         rrb.Tabs(*scores)),
            rrb.Vertical(rrb.Grid(*views, grid_columns=3),
                         rrb.Horizontal(rrb.TextDocumentView(origin="instruction", name="episode"),
                                        rrb.TextDocumentView(origin="status", name="keypose")),
                         rrb.TimeSeriesView(origin="errors", name="errors vs reference"),
                         row_shares=[2, 1, 1]),
            column_shares=[1, 1],
        ),
        # Paused: a recording opens on its first keypose, to be scrubbed (press play or "follow" to watch it run).
        rrb.TimePanel(state="collapsed", timeline=TIMELINE, play_state="paused"),
        collapse_panels=True,
    )


def _fmt_keypose(k: Any) -> str:
    p, q = k.position, k.quaternion
    return (f"({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m · q=({q[0]:.2f}, {q[1]:.2f}, {q[2]:.2f}, {q[3]:.2f}) · "
            f"gripper {'open' if k.gripper_open else 'closed'} · "
            f"{'ignore collisions' if k.ignore_collisions else 'avoid collisions'}")


def viewer_url(web_port: int, grpc_url: str) -> str:
    """The address of the web viewer (on ``web_port``) showing the stream of the gRPC server at ``grpc_url``."""
    from urllib.parse import quote

    return f"http://localhost:{web_port}/?url={quote(grpc_url, safe='')}"


class RerunEpisodeLog:
    """An :class:`~bridgevla.evaluation.inspection.EpisodeSink` that logs into a rerun ``RecordingStream``.

    ``path``: write an ``.rrd`` file; ``serve``: also host a gRPC server (port ``grpc_port``) and a web viewer
    (``web_port``) that shows the episode live. At least one of the two is needed.
    """

    def __init__(self, path: str | Path | None = None, serve: bool = False, grpc_port: int = 9876,
                 web_port: int = 9090, open_browser: bool = False, recording_id: str | None = None) -> None:
        if path is None and not serve:
            raise ValueError("out: give an .rrd path, or serve=true to stream to a viewer")
        self.rr = require_rerun()
        self.path = None if path is None else Path(path)
        self.serve, self.grpc_port, self.web_port, self.open_browser = serve, grpc_port, web_port, open_browser
        self.rec = self.rr.RecordingStream("bridgevla", recording_id=recording_id or str(uuid.uuid4()))
        self.url: str | None = None
        self.header: EpisodeHeader | None = None
        self.path_so_far: list[np.ndarray] = []

    def _open(self, bounds: list[float]) -> None:
        """Attach the file and/or the server: on the first ``begin``, so that an episode that cannot start (a bad
        task, a missing file) leaves no empty recording behind."""
        rr, sinks = self.rr, []
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sinks.append(rr.FileSink(str(self.path)))
        if self.serve:
            server = rr.GrpcServerSink(port=self.grpc_port)
            sinks.append(server)
            # The server binds every interface; a browser on this machine reaches it on the loopback address.
            grpc_url = server.uri.replace("0.0.0.0", "127.0.0.1")
            rr.serve_web_viewer(web_port=self.web_port, open_browser=self.open_browser, connect_to=grpc_url)
            self.url = viewer_url(self.web_port, grpc_url)
            print(f"streaming live: open {self.url}", flush=True)
        self.rec.set_sinks(*sinks, default_blueprint=blueprint(bounds))

    # ---------------------------------------------------------------- EpisodeSink
    def begin(self, header: EpisodeHeader) -> None:
        if self.header is None:
            self._open(header.bounds)
        rr, rec = self.rr, self.rec
        self.header, self.path_so_far = header, []
        lines = [f"# {header.task} · variation {header.variation}",
                 f"{header.source} episode {header.episode}, seed {header.seed}; agent: {header.agent}; "
                 f"reference: {header.reference}", "", "**Instructions**", ""]
        lines += [f"{i}. {t}" for i, t in enumerate(header.instructions, 1)] or ["(none)"]
        rec.log("instruction", rr.TextDocument("\n".join(lines), media_type=rr.MediaType.MARKDOWN), static=True)
        rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
        lo, hi = np.asarray(header.bounds[:3]), np.asarray(header.bounds[3:])
        rec.log("world/bounds", rr.Boxes3D(centers=[(lo + hi) / 2], half_sizes=[(hi - lo) / 2],
                                          colors=[(150, 150, 150)]), static=True)

    def step(self, step: KeyposeStep) -> None:
        rr, rec = self.rr, self.rec
        rec.set_time(TIMELINE, sequence=step.index)
        colors = (np.clip(step.colors, 0, 1) * 255).round().astype(np.uint8)
        rec.log("world/cloud", rr.Points3D(step.points, colors=colors, radii=0.003))
        for k, stage in enumerate(step.stages, 1):
            rec.log(f"world/score/stage{k}", rr.Points3D(step.points, colors=inferno(normalise(stage.scores)),
                                                          radii=0.003), rr.AnyValues(score=stage.scores))
            self._views(k, stage)
        # What a step lacks is cleared, so that an earlier keypose's prediction never shows on it (the end state).
        if not step.stages:
            self._clear("world/score", "views")
        if step.stage1_position is not None:
            rec.log("world/stage1", rr.Points3D([step.stage1_position], colors=[(255, 255, 255)], radii=0.008))
        else:
            self._clear("world/stage1")
        if step.zoom_box is not None:
            lo, hi = step.zoom_box
            rec.log("world/zoom", rr.Boxes3D(centers=[(lo + hi) / 2], half_sizes=[(hi - lo) / 2],
                                            colors=[(255, 255, 255)]))
        else:
            self._clear("world/zoom")
        if step.predicted is not None:
            self._keypose("world/predicted", step.predicted, "predicted")
        else:
            self._clear("world/predicted")
        if step.reference is not None:
            self._keypose("world/reference", step.reference, self.header.reference if self.header else "reference")
        else:
            self._clear("world/reference")
        g = step.observation.gripper_pose
        rec.log("world/gripper", rr.Transform3D(translation=g[:3], quaternion=rr.Quaternion(xyzw=g[3:])),
                rr.TransformAxes3D(AXIS_LENGTH / 2))
        if len(step.trajectory):
            self.path_so_far.append(step.trajectory[:, :3])
        if self.path_so_far:
            rec.log("world/trajectory", rr.LineStrips3D([np.concatenate(self.path_so_far)], colors=[(0, 255, 255)],
                                                        radii=0.002))
        for name, cam in step.observation.cameras.items():
            e, h, w = np.asarray(cam.extrinsics), *cam.rgb.shape[:2]
            rec.log(f"world/cameras/{name}", rr.Transform3D(translation=e[:3, 3], mat3x3=e[:3, :3]),
                    rr.Pinhole(image_from_camera=np.asarray(cam.intrinsics), width=w, height=h,
                               camera_xyz=rr.ViewCoordinates.RDF, image_plane_distance=0.1),
                    rr.Image(cam.rgb))
        for name, value in step.errors.items():
            rec.log(f"errors/{name}", rr.Scalars(value))
        rec.log("status", rr.TextDocument(self._status(step), media_type=rr.MediaType.MARKDOWN))

    def end(self, outcome: dict[str, Any]) -> None:
        rr = self.rr
        if outcome.get("success"):
            text = f"**SUCCESS** after {outcome.get('keyposes')} keyposes"
        elif outcome.get("error"):
            text = f"**FAILURE**: {outcome['error']}"
        else:
            text = f"**FAILURE**: not solved in {outcome.get('keyposes')} keyposes"
        if "mean_errors" in outcome:
            text = "recorded episode: " + ", ".join(f"mean {k} {v:.2f}" for k, v in outcome["mean_errors"].items())
        self.rec.log("outcome", rr.TextDocument(text, media_type=rr.MediaType.MARKDOWN), static=True)
        self.rec.flush()

    def close(self) -> None:
        """Finish the file (its footer is written when the stream disconnects)."""
        self.rec.flush()
        self.rec.disconnect()

    # ---------------------------------------------------------------- parts
    def _clear(self, *entities: str) -> None:
        for e in entities:
            self.rec.log(e, self.rr.Clear(recursive=True))

    def _keypose(self, entity: str, k: Any, label: str) -> None:
        rr, rec = self.rr, self.rec
        rec.log(entity, rr.Transform3D(translation=k.position, quaternion=rr.Quaternion(xyzw=k.quaternion)),
                rr.TransformAxes3D(AXIS_LENGTH),
                rr.Points3D([[0.0, 0.0, 0.0]], colors=[OPEN_COLOUR if k.gripper_open else CLOSED_COLOUR],
                            radii=0.012, labels=[f"{label}: {'open' if k.gripper_open else 'closed'}"]),
                rr.AnyValues(position=k.position, quaternion_xyzw=k.quaternion, gripper_open=k.gripper_open,
                             ignore_collisions=k.ignore_collisions))

    def _views(self, k: int, stage: Any) -> None:
        rr, rec = self.rr, self.rec
        for v, name in enumerate(VIEW_NAMES):
            base = f"views/stage{k}/{name}"
            rec.log(f"{base}/image", rr.Image(stage.views[v], draw_order=0.0))
            rec.log(f"{base}/heatmap", rr.Image(heatmap_overlay(stage.heatmaps[v]), color_model="RGBA", draw_order=1.0))
            # rerun's 2D frame puts pixel (0, 0)'s centre at (0.5, 0.5); ours at (0, 0).
            rec.log(f"{base}/point", rr.Points2D([stage.pixels[v] + 0.5], colors=[(0, 255, 0)], radii=1.0,
                                                 draw_order=2.0))

    def _status(self, step: KeyposeStep) -> str:
        if step.final:
            return f"## end state\nafter {step.index} keyposes"
        lines = [f"## keypose {step.index}"]
        if step.predicted is not None:
            lines.append(f"- **predicted**: {_fmt_keypose(step.predicted)}")
        if step.gripper_open_prob is not None:
            lines.append(f"- p(gripper open) = {step.gripper_open_prob:.2f}, "
                         f"p(ignore collisions) = {step.ignore_collisions_prob:.2f}")
        if step.reference is not None:
            lines.append(f"- **{self.header.reference if self.header else 'reference'}**: "
                         f"{_fmt_keypose(step.reference)}")
        if step.errors:
            lines.append("- errors: " + ", ".join(f"{k} {v:.2f}" for k, v in step.errors.items()))
        if step.note:
            lines.append(f"- environment: {step.note}")
        return "\n".join(lines)
