"""A headless chromium driven over the DevTools protocol (no browser-automation package needed:
one websocket, the `websockets` client that viser already installs).

`Browser.open(url)` -> a `Page` with `eval(js)`, `screenshot()` (RGB numpy array), `click_text`,
`set_input`, `wait_for(js)` and `console_errors` (console.error calls, uncaught exceptions and
error-level log entries, as the page reported them).
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# WebGL on the CPU (no GPU in CI): SwiftShader through ANGLE.
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
)


def find_chromium() -> str | None:
    env = os.environ.get("SONIC_RAY_CHROMIUM")
    if env:
        return env if shutil.which(env) or os.path.isfile(env) else None
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


class Browser:
    def __init__(self, executable: str, *, width: int = 1280, height: int = 800):
        from websockets.sync.client import connect

        self.profile = tempfile.mkdtemp(prefix="sonic-ray-chromium-")
        self.proc = subprocess.Popen(
            [
                executable,
                *FLAGS,
                f"--window-size={width},{height}",
                "--remote-debugging-port=0",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        url = self._devtools_url(timeout=60)
        self.ws = connect(url, max_size=64 * 1024 * 1024, open_timeout=30)
        self.size = (width, height)
        self._ids = itertools.count(1)
        self._replies: dict[int, dict] = {}
        self._events: list[dict] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _devtools_url(self, timeout: float) -> str:
        deadline = time.time() + timeout
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on (ws://\S+)", line or "")
            if m:
                threading.Thread(
                    target=lambda: [None for _ in self.proc.stderr], daemon=True
                ).start()  # drain
                return m.group(1)
            if not line and self.proc.poll() is not None:
                break
        raise RuntimeError("chromium did not start (no DevTools endpoint)")

    def _read(self) -> None:
        try:
            for raw in self.ws:
                msg = json.loads(raw)
                with self._cv:
                    if "id" in msg:
                        self._replies[msg["id"]] = msg
                    else:
                        self._events.append(msg)
                    self._cv.notify_all()
        except Exception:  # closed
            pass

    def send(
        self, method: str, params: dict | None = None, *, session: str | None = None, timeout: float = 60.0
    ) -> dict:
        i = next(self._ids)
        msg = {"id": i, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send(json.dumps(msg))
        with self._cv:
            if not self._cv.wait_for(lambda: i in self._replies, timeout=timeout):
                raise TimeoutError(f"DevTools {method}: no reply in {timeout} s")
            reply = self._replies.pop(i)
        if "error" in reply:
            raise RuntimeError(f"DevTools {method}: {reply['error']}")
        return reply.get("result", {})

    def events(self, session: str) -> list[dict]:
        with self._cv:
            return [e for e in self._events if e.get("sessionId") == session]

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable", session=session)
        w, h = self.size
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": w, "height": h, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        self.send("Page.navigate", {"url": url}, session=session)
        return page

    def close(self) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def eval(self, js: str):
        r = self.browser.send(
            "Runtime.evaluate",
            {"expression": js, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in r:
            raise RuntimeError(f"page JS failed: {r['exceptionDetails'].get('text')} in {js[:80]!r}")
        return r["result"].get("value")

    def wait_for(self, js: str, *, timeout: float = 60.0, what: str = "") -> object:
        deadline = time.time() + timeout
        while time.time() < deadline:
            v = self.eval(js)
            if v:
                return v
            time.sleep(0.25)
        raise TimeoutError(f"page: {what or js!r} not true within {timeout} s")

    def screenshot(self) -> np.ndarray:
        from PIL import Image

        data = self.browser.send("Page.captureScreenshot", {"format": "png"}, session=self.session)["data"]
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))

    def click_text(self, text: str, selector: str = "button") -> None:
        """Click the first `selector` element whose visible text is `text`."""
        ok = self.eval(f"""(() => {{ const el = [...document.querySelectorAll({json.dumps(selector)})]
            .find(e => e.innerText.trim() === {json.dumps(text)});
            if (!el) return false; el.click(); return true; }})()""")
        if not ok:
            raise LookupError(f"page: no {selector} with text {text!r}")

    def console_errors(self) -> list[str]:
        out = []
        for e in self.browser.events(self.session):
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append(p.get("exceptionDetails", {}).get("text", "exception"))
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out
