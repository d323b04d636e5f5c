"""``bridgevla robot run|calibrate|record --config robot.yaml``: the robot jobs and their one config.

``backend: sim`` drives the embedded MuJoCo environment as arm and cameras (the episodes, seeds and variations of
``bridgevla eval``, so both give the same results); ``backend: franka`` a Franka through franky with RealSense
cameras calibrated in ``calibration``. The keyposes come from ``policy.server`` (a running ``bridgevla serve``) or
``policy.checkpoint`` (a policy in this process). docs/robot.md walks through a real set-up.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bridgevla.configuration import to_dict
from bridgevla.serving.arm import FrankyArm, FrankyConfig
from bridgevla.serving.calibration import CalibrateConfig, calibrate, load_calibration, save_calibration
from bridgevla.serving.cameras import Mount, RealSenseCameras, RealSenseConfig
from bridgevla.serving.client import KeyposeSource, LocalPolicy, PolicyClient
from bridgevla.serving.operator import ScriptedOperator, TerminalOperator
from bridgevla.serving.recording import RecordConfig, record_demo
from bridgevla.serving.runner import EpisodeRun, run_episode, timing_summary, write_log
from bridgevla.serving.safety import SafeArm, SafetyConfig, SafetyLayer

log = logging.getLogger("bridgevla.robot")


@dataclass
class PolicySourceConfig:
    server: str = ""  # ws://host:port of `bridgevla serve` (preferred: the GPU machine keeps the policy)
    api_key: str | None = None  # or BRIDGEVLA_API_KEY in the environment
    checkpoint: str = ""  # a policy directory, run in this process, when no server is given
    device: str = "auto"
    runtime: dict[str, Any] = field(default_factory=dict)  # the in-process policy's speed settings (as eval's)

    def __post_init__(self) -> None:
        from bridgevla.model.config import check_runtime

        check_runtime(self.runtime, "policy")


@dataclass
class SimConfig:
    """The simulated robot: which embedded episodes to run (the same specs as ``bridgevla eval``)."""

    tasks: list[str] = field(default_factory=list)  # empty: every task
    episodes: int = 1
    seeds: list[int] = field(default_factory=lambda: [0])
    seed_offset: int = 1_000_000
    env: dict[str, Any] = field(default_factory=dict)  # EmbeddedConfig options


@dataclass
class RobotConfig:
    backend: Literal["sim", "franka"] = "sim"
    policy: PolicySourceConfig = field(default_factory=PolicySourceConfig)
    instruction: str = ""  # franka: the task instruction (sim: the task's own)
    task: str = "real_task"  # franka: the episode logs' folder name
    episodes: int = 1  # franka: episodes per run (the operator resets the scene in between)
    max_keyposes: int = 25
    ask_success: bool = True  # franka: ask the operator whether the episode succeeded (for the log)
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    franka: FrankyConfig = field(default_factory=FrankyConfig)
    cameras: list[RealSenseConfig] = field(default_factory=list)
    calibration: str = "calibration.json"
    sim: SimConfig = field(default_factory=SimConfig)
    log_dir: str = "runs/robot"  # episode logs (dataset format) + episodes.jsonl
    record: RecordConfig = field(default_factory=RecordConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)

    def __post_init__(self) -> None:
        if self.max_keyposes < 1 or self.episodes < 1:
            raise ValueError("max_keyposes and episodes must be >= 1")


def open_source(cfg: PolicySourceConfig) -> KeyposeSource:
    if cfg.server:
        import os

        return PolicyClient(cfg.server, cfg.api_key or os.environ.get("BRIDGEVLA_API_KEY") or None)
    if cfg.checkpoint:
        from bridgevla.model.policy import BridgeVLAPolicy
        from bridgevla.serving.server import resolve_device

        policy = BridgeVLAPolicy.from_pretrained(cfg.checkpoint, device=resolve_device(cfg.device), **cfg.runtime)
        policy.eval()
        return LocalPolicy(policy)
    raise ValueError("policy: set policy.server (ws://host:port) or policy.checkpoint (a policy directory)")


def _log_extra(cfg: RobotConfig, source: KeyposeSource) -> dict[str, Any]:
    meta = source.metadata
    return {"backend": cfg.backend, "policy": {k: meta.get(k) for k in ("server", "preset", "weights_sha256",
                                                                          "checkpoint")},
            "safety": to_dict(cfg.safety)}


def run_sim(cfg: RobotConfig, source: KeyposeSource, operator: Any = None) -> list[dict[str, Any]]:
    """The simulated robot over the evaluation's episode specs; one JSONL line per episode (resumable)."""
    from bridgevla.evaluation.envs import make_env
    from bridgevla.evaluation.runner import EvalConfig, episode_specs, read_done
    from bridgevla.serving.sim import SimRobot

    env = make_env("embedded", cfg.sim.env)
    operator = operator or ScriptedOperator()
    out = Path(cfg.log_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        tasks = list(cfg.sim.tasks) or env.tasks()
        spec_cfg = EvalConfig(agents=["random"], tasks=tasks, episodes=cfg.sim.episodes, seeds=list(cfg.sim.seeds),
                              seed_offset=cfg.sim.seed_offset, out_dir=str(out), progress=False)
        specs = episode_specs(spec_cfg, tasks, {t: env.variations(t) for t in tasks})
        path = out / "episodes.jsonl"
        done = read_done(path)
        robot = SimRobot(env)
        bounds = source.metadata.get("bounds")
        arm = SafeArm(robot.arm, SafetyLayer(cfg.safety, bounds), operator)
        records = []
        with path.open("a") as f:
            for spec in specs:
                key = ("robot", spec.task, spec.seed, spec.episode)
                if key in done:
                    records.append(done[key])
                    continue
                obs = robot.reset(spec.task, spec.variation, spec.env_seed)
                run = run_episode(source, arm, robot.cameras, obs.instructions[0], cfg.max_keyposes, spec.task)
                write_log(run, out / "episodes", spec.task, obs.instructions[0], _log_extra(cfg, source),
                          spec.variation, spec.env_seed)
                rec = {"agent": "robot", "task": spec.task, "variation": spec.variation, "seed": spec.seed,
                       "episode": spec.episode, "env_seed": spec.env_seed, "success": bool(run.success),
                       "keyposes": run.keyposes, "end": run.end, "error": run.error, "log": str(run.log_path),
                       "timing_ms": timing_summary([run])}
                f.write(json.dumps(rec) + "\n")
                f.flush()
                records.append(rec)
        return records
    finally:
        env.close()


def _real_rig(cfg: RobotConfig, calibrated: bool = True) -> tuple[FrankyArm, RealSenseCameras]:
    if not cfg.cameras:
        raise ValueError("cameras: list the RealSense cameras (name, serial) in robot.yaml")
    if calibrated:
        mounts = {n: c.mount_object() for n, c in load_calibration(cfg.calibration).items()}
    else:  # calibrating: the camera's pose is what we are about to measure
        mounts = {c.name: Mount("fixed") for c in cfg.cameras}
    arm = FrankyArm(cfg.franka)
    try:
        cams = RealSenseCameras(list(cfg.cameras), mounts)
    except Exception:
        arm.close()
        raise
    return arm, cams


def run_real(cfg: RobotConfig, source: KeyposeSource, operator: Any = None) -> list[EpisodeRun]:
    if not cfg.instruction.strip():
        raise ValueError("instruction: say what the robot should do, e.g. instruction='open the top drawer'")
    operator = operator or TerminalOperator()
    raw_arm, cams = _real_rig(cfg)
    arm = SafeArm(raw_arm, SafetyLayer(cfg.safety, source.metadata.get("bounds")), operator)
    runs = []
    try:
        for i in range(cfg.episodes):
            if i and not operator.confirm("reset the scene for the next episode; start it?"):
                break
            run = run_episode(source, arm, cams, cfg.instruction, cfg.max_keyposes, cfg.task)
            if run.success is None and cfg.ask_success and run.end not in ("planned", "stopped"):
                run.success = operator.confirm("did the robot succeed?")
            write_log(run, Path(cfg.log_dir) / "episodes", cfg.task, cfg.instruction, _log_extra(cfg, source))
            operator.show(f"episode {i}: {run.end}, {run.keyposes} keyposes, log {run.log_path}")
            runs.append(run)
            if run.end in ("stopped", "planned"):
                break
    finally:
        cams.close()
        arm.close()
    return runs


def run_robot(cfg: RobotConfig) -> Any:
    source = open_source(cfg.policy)
    try:
        return run_sim(cfg, source) if cfg.backend == "sim" else run_real(cfg, source)
    finally:
        source.close()


def calibrate_robot(cfg: RobotConfig, operator: Any = None) -> Path:
    """``bridgevla robot calibrate``: views of the board → hand-eye → the calibration file (updated in place)."""
    if cfg.backend != "franka":
        raise ValueError("calibration needs backend: franka (the simulated cameras know their poses)")
    c = cfg.calibrate
    cam_cfg = {x.name: x for x in cfg.cameras}.get(c.camera)
    if cam_cfg is None:
        raise ValueError(f"calibrate.camera: {c.camera!r} is not in cameras {[x.name for x in cfg.cameras]}")
    operator = operator or TerminalOperator()
    one = dataclasses.replace(cfg, cameras=[cam_cfg])
    raw_arm, cams = _real_rig(one, calibrated=False)
    # Calibration poses go through the safety layer like any keypose (its workspace must be set explicitly).
    arm = SafeArm(raw_arm, SafetyLayer(cfg.safety), operator)
    try:
        intrinsics = cams.intrinsics(c.camera)
        result = calibrate(arm, cams, c.camera, intrinsics, c, operator, serial=cam_cfg.serial)
    finally:
        cams.close()
        arm.close()
    path = save_calibration(cfg.calibration, {c.camera: result.calibration})
    chk = result.check
    operator.show(f"{c.camera}: {result.calibration.views} views ({result.skipped} skipped), residual "
                  f"{chk['residual_mm']:.1f} mm / {chk['residual_deg']:.2f} deg, reprojection "
                  f"{chk['reprojection_px']:.2f} px -> {path}")
    return path


def record_robot(cfg: RobotConfig, operator: Any = None) -> list[Path]:
    """``bridgevla robot record``: one demo per ``episodes``, saved in the dataset format under record.out."""
    if cfg.backend != "franka":
        raise ValueError("demo recording needs backend: franka (simulated demos: `bridgevla generate`)")
    operator = operator or TerminalOperator()
    raw_arm, cams = _real_rig(cfg)
    arm = SafeArm(raw_arm, SafetyLayer(cfg.safety, cfg.safety.workspace or None), operator)
    paths = []
    try:
        for i in range(cfg.episodes):
            if i and not operator.confirm("reset the scene for the next demo; start it?"):
                break
            path = record_demo(arm, cams, operator, cfg.record)
            if path is None:
                break
            paths.append(path)
    finally:
        cams.close()
        arm.close()
    return paths
