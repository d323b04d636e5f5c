"""Where a robot gets its keyposes: the policy server over websockets (:class:`PolicyClient`) or a policy in the
same process (:class:`LocalPolicy`). Both answer ``infer(observation) -> Inference``, so the robot runner does not
care which one it has."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from benchmarks.protocol import Keypose, Observation
from bridgevla.serving.messages import observation_request, parse_reply
from bridgevla.serving.wire import packb, unpackb


class ServerError(RuntimeError):
    """The server refused a request or failed; the message is the server's (its text frame) or the close reason."""


@dataclass
class Inference:
    keypose: Keypose
    # client_ms: request -> keypose as the robot sees it; server_ms: the server's part; transport_ms: the rest
    # (encoding, the network, decoding); infer_ms: the policy alone.
    timing: dict[str, float] = field(default_factory=dict)
    heatmaps: dict[str, Any] | None = None


class KeyposeSource(Protocol):
    metadata: dict[str, Any]

    def infer(self, observation: Observation, return_heatmaps: bool = False,
              history: list[Keypose] | None = None) -> Inference: ...

    def close(self) -> None: ...


class PolicyClient:
    """A websocket client of ``bridgevla serve`` (openpi's protocol, our request format)."""

    def __init__(self, url: str, api_key: str | None = None, open_timeout: float = 10.0,
                 cameras: list[str] | None = None) -> None:
        try:
            from websockets.sync.client import connect
        except ImportError as e:
            raise ImportError("the policy client needs websockets: pip install 'bridgevla[serve]'") from e
        self.url = url if url.startswith("ws") else f"ws://{url}"
        headers = {"Authorization": f"Api-Key {api_key}"} if api_key else None
        self._stack = contextlib.ExitStack()  # websockets wants connect() used as a context manager
        self._ws = self._stack.enter_context(connect(self.url, compression=None, max_size=None,
                                                     additional_headers=headers, open_timeout=open_timeout))
        self.metadata: dict[str, Any] = unpackb(self._ws.recv())
        # Send exactly the cameras the server asks for (when it names them), so a robot with extra cameras works.
        self.cameras = cameras or list(self.metadata.get("cameras") or []) or None

    def infer(self, observation: Observation, return_heatmaps: bool = False,
              history: list[Keypose] | None = None) -> Inference:
        """The next keypose for ``observation``; ``history``: the keyposes executed so far this episode (the server
        is stateless: a memory policy needs them with every request)."""
        from websockets.exceptions import ConnectionClosed

        t0 = time.perf_counter()
        data = packb(observation_request(observation, self.cameras, return_heatmaps, history=history))
        t1 = time.perf_counter()
        try:
            self._ws.send(data)
            raw = self._ws.recv()
        except ConnectionClosed as e:
            raise ServerError(f"policy server closed the connection: {e}") from e
        if isinstance(raw, str):
            raise ServerError(f"policy server: {raw}")
        t2 = time.perf_counter()
        reply = unpackb(raw)
        t3 = time.perf_counter()
        server = dict(reply.get("server_timing", {}))
        client_ms = (t3 - t0) * 1000
        timing = {"client_ms": client_ms, "encode_ms": (t1 - t0) * 1000, "decode_reply_ms": (t3 - t2) * 1000,
                  "round_trip_ms": (t2 - t1) * 1000, **{k: float(v) for k, v in server.items()}}
        timing["transport_ms"] = client_ms - float(server.get("server_ms", 0.0))
        return Inference(parse_reply(reply), timing, reply.get("heatmaps"))

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class LocalPolicy:
    """A policy in this process (no server): ``policy.act`` with the same timing fields (transport 0)."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy
        self.metadata = {"server": "local", "cameras": list(policy.config.cameras),
                         "bounds": list(policy.config.bounds), "preset": policy.config.preset}

    def infer(self, observation: Observation, return_heatmaps: bool = False,
              history: list[Keypose] | None = None) -> Inference:
        t0 = time.perf_counter()
        keypose = self.policy.act(observation, history=history)
        ms = (time.perf_counter() - t0) * 1000
        return Inference(keypose, {"client_ms": ms, "infer_ms": ms, "server_ms": ms, "transport_ms": 0.0})

    def close(self) -> None:
        pass
