"""A real Home Assistant core for the tests: its own Python 3.13 venv (pinned release, cached
under ~/.cache/v2g-ha/<version>), with the requirements of every integration the test
configuration loads installed up front, so that Home Assistant runs with --skip-pip (no
network at run time). `python -m tests.support.ha_core ensure [venv]` creates it (.ci/run).

Why 2025.4.x: the newest Home Assistant whose wheels install on this machine kind's Python
3.13.0 (2025.5 needs 3.13.2 or later).
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HA_VERSION = "2025.4.4"
DEFAULT_VENV = Path.home() / ".cache" / "v2g-ha" / HA_VERSION
PYTHONS = ("/root/.pyenv/versions/3.13*/bin/python", "python3.13")

# The integrations the test configuration loads beyond the ones Home Assistant always loads.
EXTRA_DOMAINS = ("mqtt", "energy", "recorder", "automation", "blueprint", "frontend", "onboarding")

# Run inside the Home Assistant venv: the requirements of what bootstrap loads plus
# EXTRA_DOMAINS, following each manifest's dependencies.
_REQUIREMENTS_SCRIPT = r"""
import json, sys
from pathlib import Path
import homeassistant.bootstrap as b
import homeassistant.components as comps
root = Path(comps.__file__).parent
wanted = set(sys.argv[1:])
for name in dir(b):
    if name.endswith("_INTEGRATIONS") and isinstance(getattr(b, name), (set, frozenset)):
        wanted |= set(getattr(b, name))
seen, reqs, todo = set(), set(), list(wanted)
while todo:
    domain = todo.pop()
    if domain in seen:
        continue
    seen.add(domain)
    manifest = root / domain / "manifest.json"
    if not manifest.exists():
        continue
    data = json.loads(manifest.read_text())
    reqs.update(data.get("requirements", []))
    todo.extend(data.get("dependencies", []))
    todo.extend(data.get("after_dependencies", []))
print(json.dumps(sorted(reqs)))
"""


def find_python313() -> str:
    for pattern in PYTHONS:
        found = sorted(glob.glob(pattern)) if "*" in pattern else [pattern]
        for candidate in found:
            try:
                out = subprocess.run(
                    [candidate, "-c", "import sys; print(sys.version_info[:2])"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            except (OSError, subprocess.CalledProcessError):
                continue
            if out.strip() == "(3, 13)":
                return candidate
    raise RuntimeError("no Python 3.13 found (pyenv: /root/.pyenv/versions/3.13*)")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path) -> bool:
    return (
        (venv / ".v2g-ha-ready").read_text().strip() == HA_VERSION
        if (venv / ".v2g-ha-ready").exists()
        else False
    )


def ensure(venv: Path = DEFAULT_VENV) -> Path:
    """The Home Assistant venv, created and filled when missing (minutes, once)."""
    if is_ready(venv):
        return venv
    python = venv_python(venv)
    if not python.exists():
        subprocess.run([find_python313(), "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"homeassistant=={HA_VERSION}"], check=True)
    site = subprocess.run(
        [
            str(python),
            "-c",
            "import homeassistant, os; print(os.path.dirname(homeassistant.__file__))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    constraints = Path(site) / "package_constraints.txt"
    requirements = json.loads(
        subprocess.run(
            [str(python), "-c", _REQUIREMENTS_SCRIPT, *EXTRA_DOMAINS],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    if requirements:
        subprocess.run([*pip, "-c", str(constraints), *requirements], check=True)
    (venv / ".v2g-ha-ready").write_text(HA_VERSION + "\n")
    return venv


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "ensure":
        venv = (
            Path(argv[1])
            if len(argv) > 1
            else Path(os.environ.get("CSMS_TEST_HA_VENV", DEFAULT_VENV))
        )
        print(ensure(venv))
        return 0
    print("usage: python -m tests.support.ha_core ensure [venv]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---- a running Home Assistant ------------------------------------------------------------------

CONFIGURATION = """\
homeassistant:
  name: OpenV2G test home
  latitude: -37.81
  longitude: 144.96
  elevation: 30
  unit_system: metric
  time_zone: Australia/Melbourne
  currency: AUD
  country: AU
  language: en
http:
  server_host: 127.0.0.1
  server_port: {port}
logger:
  default: warning
  logs:
    homeassistant.components.mqtt: info
recorder:
  commit_interval: 1
frontend:
energy:
automation: !include automations.yaml
"""

BLUEPRINTS = Path(__file__).resolve().parents[2] / "csms" / "integrations" / "blueprints"
CLIENT_ID = "http://127.0.0.1/"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class HomeAssistant:
    """A Home Assistant core process and an admin's access token (onboarding's owner)."""

    config_dir: Path
    port: int
    process: asyncio.subprocess.Process
    token: str = ""
    refresh_token: str = ""
    _ids: int = 0
    _ws: Any = None
    log_path: Path = field(default_factory=Path)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def onboard(self) -> None:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.post(
                "/api/onboarding/users",
                json={
                    "client_id": CLIENT_ID,
                    "name": "Test owner",
                    "username": "owner",
                    "password": "owner-pass-0001",
                    "language": "en",
                },
            )
            answer.raise_for_status()
            token = await client.post(
                "/auth/token",
                data={
                    "grant_type": "authorization_code",
                    "code": answer.json()["auth_code"],
                    "client_id": CLIENT_ID,
                },
            )
            token.raise_for_status()
            self.token = token.json()["access_token"]
            self.refresh_token = token.json()["refresh_token"]

    async def rest(self, method: str, path: str, body: Any = None) -> Any:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            answer = await client.request(method, path, json=body, headers=self.headers())
            answer.raise_for_status()
            return answer.json() if answer.content else None

    async def ws(self, command: str, **data: Any) -> Any:
        """One websocket API command; its result (AssertionError with HA's error)."""
        import websockets

        if self._ws is None:
            self._ws = await websockets.connect(f"ws://127.0.0.1:{self.port}/api/websocket")
            assert json.loads(await self._ws.recv())["type"] == "auth_required"
            await self._ws.send(json.dumps({"type": "auth", "access_token": self.token}))
            assert json.loads(await self._ws.recv())["type"] == "auth_ok"
        self._ids += 1
        await self._ws.send(json.dumps({"id": self._ids, "type": command, **data}))
        while True:
            reply = json.loads(await self._ws.recv())
            if reply.get("id") == self._ids and reply.get("type") == "result":
                assert reply["success"], f"{command}: {reply.get('error')}"
                return reply["result"]

    async def add_mqtt(self, host: str, port: int) -> None:
        """The MQTT integration as a config entry (2025.4 takes the broker only from a config
        entry, not from YAML), through the config flow a user would click through."""
        flow = await self.rest(
            "POST",
            "/api/config/config_entries/flow",
            {"handler": "mqtt", "show_advanced_options": False},
        )
        while flow["type"] == "form" or flow["type"] == "menu":
            if flow["type"] == "menu":
                flow = await self.rest(
                    "POST",
                    f"/api/config/config_entries/flow/{flow['flow_id']}",
                    {"next_step_id": "broker"},
                )
                continue
            assert flow["step_id"] == "broker", flow
            flow = await self.rest(
                "POST",
                f"/api/config/config_entries/flow/{flow['flow_id']}",
                {"broker": host, "port": port},
            )
        assert flow["type"] == "create_entry", flow

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    async def close(self) -> None:
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 30)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


def _prepare_config(config_dir: Path) -> tuple[int, Path]:
    config_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    (config_dir / "configuration.yaml").write_text(CONFIGURATION.format(port=port))
    (config_dir / "automations.yaml").write_text("[]\n")
    # Onboarding's other steps marked done (the frontend then shows the dashboards): its core
    # config step would add weather, radio and text-to-speech entries this venv lacks.
    storage = config_dir / ".storage"
    storage.mkdir(exist_ok=True)
    (storage / "onboarding").write_text(
        json.dumps(
            {
                "version": 4,
                "minor_version": 1,
                "key": "onboarding",
                "data": {"done": ["core_config", "analytics", "integration"]},
            }
        )
    )
    shutil.copytree(BLUEPRINTS, config_dir / "blueprints", dirs_exist_ok=True)
    return port, config_dir / "ha-stdout.log"


@contextlib.asynccontextmanager
async def running_home_assistant(venv: Path, config_dir: Path) -> AsyncIterator[HomeAssistant]:
    """Home Assistant from `venv` on a free loopback port with the test configuration and the
    project's blueprints; onboarded (an owner with a token). --skip-pip: nothing is installed
    at run time."""
    import httpx

    port, log_path = _prepare_config(config_dir)
    out = log_path.open("wb")
    process = await asyncio.create_subprocess_exec(
        str(venv_python(venv)),
        "-m",
        "homeassistant",
        "--config",
        str(config_dir),
        "--skip-pip",
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    ha = HomeAssistant(config_dir, port, process, log_path=log_path)
    try:
        deadline = time.monotonic() + 240
        async with httpx.AsyncClient(timeout=5) as client:
            while True:
                if process.returncode is not None:
                    raise AssertionError(f"Home Assistant exited: {ha.log()[-3000:]}")
                try:
                    if (await client.get(f"{ha.url}/api/onboarding")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"Home Assistant did not start: {ha.log()[-3000:]}")
                await asyncio.sleep(0.5)
        await ha.onboard()
        yield ha
    finally:
        await ha.close()
        out.close()
