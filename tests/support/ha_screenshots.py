"""Screenshots of the real Home Assistant in the test (README): headless chromium driven over
the Chrome DevTools Protocol; the access token is put where Home Assistant's frontend keeps it
(localStorage "hassTokens") so no login page is shown."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

from tests.support.ha_core import CLIENT_ID, HomeAssistant

WIDTH, HEIGHT = 1280, 1500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Page:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = 0

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        self.ids += 1
        await self.ws.send(json.dumps({"id": self.ids, "method": method, "params": params}))
        while True:
            reply = json.loads(await self.ws.recv())
            if reply.get("id") == self.ids:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))


async def take_screenshots(ha: HomeAssistant, out_dir: Path, device_id: str) -> list[Path]:
    """The vehicle's device page (its entities) and the Energy dashboard, as PNGs."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise AssertionError("chromium not installed (apt-get install -y chromium)")
    await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory() as profile:
        process = subprocess.Popen(  # noqa: ASYNC220 - a browser left running, not awaited
            [
                browser,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={WIDTH},{HEIGHT}",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            return await _shoot(ha, out_dir, device_id, port)
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)


async def _shoot(ha: HomeAssistant, out_dir: Path, device_id: str, port: int) -> list[Path]:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient() as client:
        while True:
            try:
                targets = (await client.get(f"http://127.0.0.1:{port}/json/list")).json()
                page_ws = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
                break
            except (httpx.HTTPError, StopIteration):
                assert time.monotonic() < deadline, "chromium did not start"
                await asyncio.sleep(0.3)
    saved: list[Path] = []
    async with websockets.connect(page_ws, max_size=50_000_000) as ws:
        page = _Page(ws)
        await page.send("Page.enable")
        await page.send("Page.navigate", url=f"{ha.url}/auth/authorize")
        await asyncio.sleep(2)
        tokens = {
            "access_token": ha.token,
            "refresh_token": ha.refresh_token,
            "token_type": "Bearer",
            "expires_in": 1800,
            "expires": int(time.time() * 1000) + 1_800_000,
            "hassUrl": ha.url,
            "clientId": CLIENT_ID,
        }
        await page.send(
            "Runtime.evaluate",
            expression=f"localStorage.setItem('hassTokens', {json.dumps(json.dumps(tokens))})",
        )
        for name, path in (
            ("home-assistant-entities.png", f"/config/devices/device/{device_id}"),
            ("home-assistant-energy.png", "/energy"),
        ):
            await page.send("Page.navigate", url=f"{ha.url}{path}")
            await asyncio.sleep(12)  # the frontend loads, connects and renders
            shot = await page.send("Page.captureScreenshot", format="png")
            target = out_dir / name
            await asyncio.to_thread(target.write_bytes, base64.b64decode(shot["data"]))
            saved.append(target)
    return saved
