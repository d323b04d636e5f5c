"""Request -> keypose latency over loopback: ``python -m bridgevla.scripts.speed_serving`` (docs/PERFORMANCE.md).

For each preset (random weights), one server on 127.0.0.1 and one client sending an embedded-benchmark observation
(4 RGB-D cameras at 128 px): medians over ``--repeats`` requests of the client's request -> keypose time, the
policy's ``act()`` inside the server, the server's own time (decode, validation, queue, act) and the transport
(client time minus server time: encoding, the socket, decoding of the reply).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    from benchmarks.embedded import EmbeddedEnv
    from bridgevla.model.config import BridgeVLAConfig
    from bridgevla.model.policy import BridgeVLAPolicy
    from bridgevla.serving.client import PolicyClient
    from bridgevla.serving.server import PolicyServer, ServeConfig

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--presets", default="tiny,small")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    env = EmbeddedEnv()
    obs = env.reset("open_drawer", 0, 0)
    env.close()
    for preset in args.presets.split(","):
        torch.manual_seed(0)
        policy = BridgeVLAPolicy(BridgeVLAConfig(preset=preset, image_size=64, patch_size=8 if preset == "small"
                                                 else 16, bounds=[-0.1, -0.35, 0.65, 0.6, 0.35, 1.35],
                                                 max_points=16000))
        with PolicyServer(policy, ServeConfig(port=0, threads=args.threads)) as srv, \
                PolicyClient(f"127.0.0.1:{srv.port}") as client:
            for _ in range(3):
                client.infer(obs)  # warm-up
            rows = [client.infer(obs).timing for _ in range(args.repeats)]
        med = {k: round(float(np.median([r[k] for r in rows])), 2) for k in
               ("client_ms", "server_ms", "infer_ms", "transport_ms", "decode_ms", "validate_ms", "queue_ms",
                "encode_ms")}
        print(json.dumps({"preset": preset, "cameras": len(obs.cameras), "repeats": args.repeats, **med}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
