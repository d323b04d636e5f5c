"""The policy server: ``bridgevla serve --checkpoint DIR``. Keeps one policy on its device and answers keypose
requests over websockets, speaking openpi's protocol so that ``openpi_client.websocket_client_policy.
WebsocketClientPolicy`` drives it unchanged:

- on connect the server sends one binary frame, ``msgpack(metadata)`` (policy config, cameras, bounds, sha256 of
  the weights, request limits);
- then each binary frame ``msgpack(request)`` (``bridgevla.serving.messages``) gets ``msgpack(reply)`` with
  ``server_timing`` added (openpi's ``infer_ms``/``prev_total_ms`` plus our breakdown);
- a bad request or an internal error gets a **text** frame with the message, then close code 1011 — the connection
  ends, the server keeps serving every other one;
- ``GET /healthz`` answers 200; with an API key set, the handshake needs ``Authorization: Api-Key <key>`` (else 401).

Requests are decoded and validated on a thread pool (so a big or malformed one never blocks the event loop), then
queued for one inference thread that owns the policy: requests that wait together (several robots) are run as one
batch of ``act()``, which gives each observation the same keypose as alone (one subsampling seed per observation).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import http
import logging
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridgevla.serving.messages import KeyposeRequest, RequestError, RequestLimits, keypose_reply, parse_request
from bridgevla.serving.wire import WireError, packb, unpackb

log = logging.getLogger("bridgevla.serve")

PROTOCOL = "bridgevla-keypose"
PROTOCOL_VERSION = 1
API_KEY_ENV = "BRIDGEVLA_API_KEY"


@dataclass
class ServeConfig:
    """``bridgevla serve`` settings (YAML + ``key=value`` overrides, like every job)."""

    checkpoint: str = ""
    host: str = "127.0.0.1"  # 0.0.0.0 to accept robots on other machines
    port: int = 8000
    device: str = "auto"
    api_key: str | None = None  # None: read BRIDGEVLA_API_KEY; empty there too = no key required
    max_batch: int = 8  # requests run together in one act() when they queue up at the same time
    batch_wait_ms: float = 0.0  # extra wait for more requests before a batch runs (0: take what is queued)
    max_message_mb: float = 256.0  # websocket frame limit; bigger frames are closed with code 1009
    max_pixels: int = 1920 * 1080  # per camera
    max_cameras: int = 8
    max_instruction_chars: int = 512
    cameras: list[str] = field(default_factory=list)  # required cameras; empty = the policy's config.cameras
    # Speed settings for the loaded policy instead of the saved ones (from_pretrained's runtime overrides, e.g.
    # {compile: model, compile_mode: reduce-overhead} on a GPU); they do not change the maths.
    runtime: dict[str, Any] = field(default_factory=dict)
    threads: int = 1  # torch intra-op threads
    decode_workers: int = 2  # threads that decode and validate requests

    def __post_init__(self) -> None:
        from bridgevla.model.config import check_runtime

        check_runtime(self.runtime, "serve")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be in [0, 65535], got {self.port}")
        for name in ("max_batch", "max_pixels", "max_cameras", "max_instruction_chars", "threads", "decode_workers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_wait_ms < 0 or self.max_message_mb <= 0:
            raise ValueError("batch_wait_ms must be >= 0 and max_message_mb > 0")


def weights_sha256(policy: Any, checkpoint: str | Path | None = None) -> str:
    """sha256 of the weights: the manifest's entry for a saved checkpoint, else a hash of the state dict."""
    if checkpoint:
        import json

        from bridgevla.model.checkpoint import MANIFEST, WEIGHTS

        return json.loads((Path(checkpoint) / MANIFEST).read_text())["files"][WEIGHTS]["sha256"]
    import torch

    h = hashlib.sha256()
    for name, t in sorted(policy.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@dataclass
class _Job:
    request: KeyposeRequest
    cloud: tuple[Any, Any]  # the observation's cloud, built once while validating the request
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    enqueued: float


class _InferenceThread:
    """The one thread that calls the policy; batches whatever is queued (up to ``max_batch``)."""

    def __init__(self, policy: Any, max_batch: int, wait_s: float) -> None:
        self.policy, self.max_batch, self.wait_s = policy, max_batch, wait_s
        self.jobs: queue.Queue[_Job | None] = queue.Queue()
        self.batches = 0
        self.thread = threading.Thread(target=self._run, name="bridgevla-inference", daemon=True)
        self.thread.start()

    def submit(self, request: KeyposeRequest, cloud: tuple[Any, Any], loop: asyncio.AbstractEventLoop
               ) -> asyncio.Future:
        fut = loop.create_future()
        self.jobs.put(_Job(request, cloud, fut, loop, time.perf_counter()))
        return fut

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)

    def _take(self) -> list[_Job] | None:
        first = self.jobs.get()
        if first is None:
            return None
        jobs = [first]
        deadline = time.perf_counter() + self.wait_s
        while len(jobs) < self.max_batch:
            try:
                left = deadline - time.perf_counter()
                job = self.jobs.get(timeout=left) if left > 0 else self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # finish this batch, then stop
                break
            jobs.append(job)
        return jobs

    def _run(self) -> None:
        while (jobs := self._take()) is not None:
            jobs = [j for j in jobs if not j.future.cancelled()]
            if not jobs:
                continue
            start = time.perf_counter()
            try:
                heat = any(j.request.return_heatmaps for j in jobs)
                out = self.policy.act([j.request.observation for j in jobs], return_prediction=heat,
                                      history=[j.request.history for j in jobs], clouds=[j.cloud for j in jobs])
                keyposes, pred = out if heat else (out, None)
                infer_ms = (time.perf_counter() - start) * 1000
                self.batches += 1
                for i, j in enumerate(jobs):
                    maps = None
                    if j.request.return_heatmaps:
                        maps = {"stage1": pred.heatmaps[0][i].float().cpu().numpy(),
                                "stage2": pred.heatmaps[1][i].float().cpu().numpy(),
                                "stage1_position": pred.stage1_position[i].double().cpu().numpy()}
                    result = (keyposes[i], maps, infer_ms, len(jobs), (start - j.enqueued) * 1000)
                    j.loop.call_soon_threadsafe(_resolve, j.future, result, None)
            except Exception as e:  # noqa: BLE001 - reported to each waiting client; the thread keeps serving
                log.exception("inference failed for a batch of %d", len(jobs))
                for j in jobs:
                    j.loop.call_soon_threadsafe(_resolve, j.future, None, e)


def _resolve(fut: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if fut.done():  # the client went away and the handler cancelled it
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class PolicyServer:
    """Serve ``policy``: anything with ``observation_cloud(observation)``, ``act(list[Observation],
    return_prediction=..., history=..., clouds=...)``, ``config`` and ``bounds``, i.e. a
    :class:`~bridgevla.model.policy.BridgeVLAPolicy`. ``start()`` runs it on a background thread (tests,
    benchmarks); ``serve_forever()`` in the foreground (the CLI). Stateless: a request carries the keyposes its
    episode executed so far (``history``), which a memory policy draws into its input."""

    def __init__(self, policy: Any, config: ServeConfig | None = None, checkpoint: str | Path | None = None) -> None:
        self.policy = policy
        self.config = cfg = config or ServeConfig()
        key = cfg.api_key if cfg.api_key is not None else os.environ.get(API_KEY_ENV, "")
        self.api_key = key or None
        cams = tuple(cfg.cameras) or tuple(policy.config.cameras)
        self.limits = RequestLimits(cams, cfg.max_cameras, cfg.max_pixels, cfg.max_instruction_chars)
        self.bounds = policy.bounds
        self.stats = {"served": 0, "bad_requests": 0, "internal_errors": 0, "unauthorized": 0, "connections": 0}
        self.metadata = {
            "server": "bridgevla",
            "protocol": PROTOCOL,
            "protocol_version": PROTOCOL_VERSION,
            "policy": policy.config.to_dict(),
            "preset": policy.config.preset,
            "cameras": list(cams),
            "bounds": [float(b) for b in policy.config.bounds],
            "weights_sha256": weights_sha256(policy, checkpoint),
            "checkpoint": str(checkpoint) if checkpoint else None,
            "api_key_required": self.api_key is not None,
            "limits": self.limits.to_dict(),
            "max_batch": cfg.max_batch,
        }
        self._pool: ThreadPoolExecutor | None = None
        self._inference: _InferenceThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ HTTP side of the handshake
    def _process_request(self, connection: Any, request: Any) -> Any:
        if request.path == "/healthz":
            return connection.respond(http.HTTPStatus.OK, "OK\n")
        if self.api_key is not None:
            got = request.headers.get("Authorization") or ""
            if not hmac.compare_digest(got.encode(), f"Api-Key {self.api_key}".encode()):
                self.stats["unauthorized"] += 1
                return connection.respond(http.HTTPStatus.UNAUTHORIZED,
                                          "missing or wrong API key: send the header 'Authorization: Api-Key <key>'\n")
        return None

    # ------------------------------------------------------------------ one connection
    def _prepare(self, raw: bytes) -> tuple[KeyposeRequest, tuple[Any, Any], float, float]:
        t0 = time.perf_counter()
        msg = unpackb(raw, max_array_bytes=int(self.config.max_message_mb * (1 << 20)))
        t1 = time.perf_counter()
        req = parse_request(msg, self.limits)
        # The policy's own first preprocessing step (its cameras, its bounds), on a decode thread: checked here so a
        # useless request fails before it queues, and handed to act() so it is not built twice.
        cloud = self.policy.observation_cloud(req.observation)
        points = cloud[0]
        if len(points) == 0:
            raise RequestError(f"no point of the observation lies inside the scene bounds {self.bounds.to_list()} "
                               "(check that extrinsics are camera-to-base and depth is in metres)")
        return req, cloud, (t1 - t0) * 1000, (time.perf_counter() - t1) * 1000

    async def _fail(self, ws: Any, message: str) -> None:
        import websockets

        try:
            await ws.send(message)
            await ws.close(code=1011, reason=message[:120])
        except websockets.ConnectionClosed:
            pass

    async def _handler(self, ws: Any) -> None:
        import websockets

        self.stats["connections"] += 1
        loop = asyncio.get_running_loop()
        try:
            await ws.send(packb(self.metadata))
        except websockets.ConnectionClosed:
            return
        prev_total: float | None = None
        while True:
            try:
                raw = await ws.recv()
            except websockets.ConnectionClosed:
                return
            t0 = time.perf_counter()
            try:
                if isinstance(raw, str):
                    raise RequestError("requests must be binary msgpack frames, got a text frame")
                req, cloud, decode_ms, validate_ms = await loop.run_in_executor(self._pool, self._prepare, raw)
            except (WireError, RequestError) as e:
                self.stats["bad_requests"] += 1
                await self._fail(ws, f"bad request: {e}")
                return
            fut = self._inference.submit(req, cloud, loop)
            try:
                keypose, maps, infer_ms, batch, queue_ms = await fut
            except asyncio.CancelledError:
                fut.cancel()
                raise
            except Exception as e:  # noqa: BLE001 - the message goes to the client; the server keeps serving
                self.stats["internal_errors"] += 1
                await self._fail(ws, f"internal error: {type(e).__name__}: {e}")
                return
            reply = keypose_reply(keypose, len(cloud[0]))
            if maps is not None:
                reply["heatmaps"] = maps
            if req.request_id is not None:
                reply["request_id"] = req.request_id
            timing = {"infer_ms": infer_ms, "batch_size": batch, "queue_ms": queue_ms, "decode_ms": decode_ms,
                      "validate_ms": validate_ms, "server_ms": (time.perf_counter() - t0) * 1000}
            if prev_total is not None:
                timing["prev_total_ms"] = prev_total
            reply["server_timing"] = timing
            try:
                await ws.send(packb(reply))
            except websockets.ConnectionClosed:
                return
            self.stats["served"] += 1
            prev_total = (time.perf_counter() - t0) * 1000

    # ------------------------------------------------------------------ life cycle
    async def _serve(self, ready: threading.Event | None) -> None:
        from websockets.asyncio.server import serve

        cfg = self.config
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        async with serve(self._handler, cfg.host, cfg.port, compression=None,
                         max_size=int(cfg.max_message_mb * (1 << 20)), process_request=self._process_request,
                         ping_interval=None) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            log.info("serving %s on ws://%s:%d", self.metadata["preset"], cfg.host, self.port)
            if ready is not None:
                ready.set()
            await self._stop.wait()

    def _open(self) -> None:
        import torch

        torch.set_num_threads(self.config.threads)
        if hasattr(self.policy, "eval"):
            self.policy.eval()
        self._pool = ThreadPoolExecutor(self.config.decode_workers, thread_name_prefix="bridgevla-decode")
        self._inference = _InferenceThread(self.policy, self.config.max_batch, self.config.batch_wait_ms / 1000)

    def _close(self) -> None:
        if self._inference is not None:
            self._inference.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def start(self, timeout: float = 30.0) -> int:
        """Serve on a background thread; returns the bound port (``port=0`` picks a free one)."""
        self._open()
        ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve(ready)), name="bridgevla-serve",
                                        daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise RuntimeError("policy server did not start")
        return int(self.port)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self._close()

    def serve_forever(self) -> None:
        self._open()
        try:
            asyncio.run(self._serve(None))
        finally:
            self._close()

    def __enter__(self) -> PolicyServer:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def resolve_device(device: str) -> str:
    import torch

    return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device


def load_server(cfg: ServeConfig) -> PolicyServer:
    """The server of ``bridgevla serve``: the checkpoint loaded (sha256-checked) onto its device."""
    from bridgevla.model.policy import BridgeVLAPolicy

    if not cfg.checkpoint or not Path(cfg.checkpoint).is_dir():
        raise ValueError(f"checkpoint: {cfg.checkpoint!r} is not a policy directory (train.out_dir/policy)")
    policy = BridgeVLAPolicy.from_pretrained(cfg.checkpoint, device=resolve_device(cfg.device), **cfg.runtime)
    return PolicyServer(policy, cfg, checkpoint=cfg.checkpoint)


__all__ = ["PROTOCOL", "PROTOCOL_VERSION", "PolicyServer", "ServeConfig", "load_server", "weights_sha256"]
