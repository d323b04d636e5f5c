"""Screenshot a web page - the rerun web viewer that ``bridgevla inspect --serve`` hosts - in headless Chromium.

    python -m bridgevla.scripts.viewer_screenshot URL OUT.png [--wait 60] [--size 1600x1000]

Chromium is Debian's ``chromium`` package (``apt-get install chromium``), driven through its DevTools protocol over
a websocket (the ``websockets`` package), because ``chromium --screenshot`` fires on the page's load event, long
before the viewer's WebAssembly has started and drawn anything. WebGL runs on SwiftShader, Chromium's CPU renderer,
so no GPU or display is needed. The page is captured once it has stopped changing (two captures ``settle`` seconds
apart are identical) and differs from the first capture (the loading screen), or after ``wait`` seconds.
Console errors (WebGL/WebGPU failures, failed fetches) are printed, so a blank capture says why.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

# SwiftShader WebGL: Chromium's software GL, the one that works with no GPU and no display.
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
                  "--ignore-gpu-blocklist", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
                  "--mute-audio", "--hide-scrollbars"]


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found: apt-get install chromium (Debian's package)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DevTools:
    """The smallest DevTools-protocol client: numbered commands, events collected while waiting for replies."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        my_id = self.next_id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)


def _changed_fraction(a: bytes, b: bytes) -> float:
    """The fraction of pixels that differ between two PNG captures."""
    import io

    import numpy as np
    from PIL import Image

    x, y = (np.asarray(Image.open(io.BytesIO(v)).convert("RGB"), dtype=np.int16) for v in (a, b))
    return 1.0 if x.shape != y.shape else float((np.abs(x - y).max(-1) > 8).mean())


def console_lines(events: list[dict[str, Any]]) -> list[str]:
    out = []
    for e in events:
        if e.get("method") == "Runtime.consoleAPICalled":
            p = e["params"]
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
            out.append(f"console.{p.get('type')}: {text}")
        elif e.get("method") == "Log.entryAdded":
            p = e["params"]["entry"]
            out.append(f"log.{p.get('level')}: {p.get('text')}")
        elif e.get("method") == "Runtime.exceptionThrown":
            out.append(f"exception: {e['params']['exceptionDetails'].get('text')}")
    return out


def screenshot(url: str, out: str | Path, width: int = 1600, height: int = 1000, wait: float = 60.0,
               settle: float = 4.0, chromium: str | None = None) -> dict[str, Any]:
    """Load ``url``, wait for it to draw and settle, write a PNG to ``out``; returns timings and console lines."""
    exe = chromium or find_chromium()
    port = _free_port()
    profile = tempfile.mkdtemp(prefix="bridgevla-chromium-")
    proc = subprocess.Popen([exe, *CHROMIUM_FLAGS, f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    try:
        targets = None
        while time.monotonic() - t0 < 30:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    targets = [t for t in json.load(r) if t.get("type") == "page"]
                if targets:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        if not targets:
            raise RuntimeError("Chromium's DevTools endpoint did not come up within 30 s")
        from websockets.sync.client import connect

        with connect(targets[0]["webSocketDebuggerUrl"], max_size=1 << 28, open_timeout=30) as ws:
            dt = DevTools(ws)
            for domain in ("Page", "Runtime", "Log"):
                dt.call(f"{domain}.enable")
            dt.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                    mobile=False)
            dt.call("Page.navigate", url=url)
            start = time.monotonic()
            first = prev = None
            shot = b""
            while time.monotonic() - start < wait:
                time.sleep(settle)
                shot = base64.b64decode(dt.call("Page.captureScreenshot", format="png")["data"])
                if first is None:
                    first = shot
                elif _changed_fraction(shot, prev) < 0.001 and _changed_fraction(shot, first) > 0.05:
                    break  # drawn (no longer the loading screen) and still: the viewer has settled
                prev = shot
            settled = time.monotonic() - start < wait
            gl = dt.call("Runtime.evaluate", returnByValue=True, expression=(
                "(() => { const c = document.createElement('canvas');"
                " const g = c.getContext('webgl2'); if (!g) return 'no WebGL2';"
                " const d = g.getExtension('WEBGL_debug_renderer_info');"
                " return d ? g.getParameter(d.UNMASKED_RENDERER_WEBGL) : g.getParameter(g.RENDERER); })()"))
            gpu = dt.call("Runtime.evaluate", returnByValue=True, expression="String(!!navigator.gpu)")
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_bytes(shot)
        return {"seconds": round(time.monotonic() - t0, 1), "settled": settled,
                "webgl2_renderer": gl.get("result", {}).get("value"),
                "webgpu_api": gpu.get("result", {}).get("value"), "console": console_lines(dt.events)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="viewer_screenshot", description=__doc__.split("\n")[0])
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("--wait", type=float, default=60.0, help="give up waiting for the page to settle after this")
    p.add_argument("--size", default="1600x1000", help="window WIDTHxHEIGHT")
    args = p.parse_args(argv)
    w, h = (int(v) for v in args.size.lower().split("x"))
    info = screenshot(args.url, args.out, w, h, args.wait)
    print(json.dumps({k: v for k, v in info.items() if k != "console"}))
    for line in info["console"]:
        print(line, file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
