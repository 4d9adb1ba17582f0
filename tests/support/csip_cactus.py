"""The CACTUS runner (CSIP-AUS client conformance procedures) in front of a fresh envoy, for the
tests: `running_cactus(venv, postgres_url, workdir)` starts envoy (its own database: the runner
truncates it on every /initialise) and the runner on loopback; `CactusRunner.run_procedure`
drives one procedure (initialise, start, the client under test, finalize) and returns its
parsed summary (each step and criterion, passed or not).

The client under test talks 2030.5 to `CactusRunner.url` with its certificate in the
`ssl-client-cert` header; the runner proxies to envoy and judges what it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import secrets
import shutil
import zipfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

from tests.support.csip_server import (
    CERT_HEADER,
    EnvoyServer,
    Service,
    TestIdentity,
    absolute_folder,
    clean_env,
    free_port,
    make_identity,
    running_envoy,
    start_service,
    vendor_dir,
    venv_python,
)

CSIP_AUS_VERSION = "v1.2"
MAX_ZIP_BYTES = 64 * 1024 * 1024  # the runner's artefacts: logs (capped at 32 MB each) and dumps
MAX_SUMMARY_BYTES = 8 * 1024 * 1024

# aiohttp's run_app binds every interface unless told: loopback only.
_RUN_RUNNER = (
    "from aiohttp import web\n"
    "from cactus_runner.app.env import APP_HOST, APP_PORT\n"
    "from cactus_runner.app.main import app\n"
    "web.run_app(app, host=APP_HOST, port=APP_PORT)\n"
)
_PROCEDURE_YAML = (
    "import sys\n"
    "from cactus_test_definitions.client import test_procedures as tp\n"
    "sys.stdout.write(tp.get_yaml_contents(tp.TestProcedureId(sys.argv[1])))\n"
)


@dataclass(frozen=True)
class Criterion:
    type: str
    success: bool
    details: str


@dataclass(frozen=True)
class ProcedureSummary:
    """What the runner's finalize zip says about one procedure run."""

    test_procedure: str
    status_summary: str
    steps: dict[str, bool]  # step name -> completed
    criteria: list[Criterion]
    files: list[str]  # names in the artefact zip
    errors: list[str]  # what the runner could not put in the zip (generation-errors.txt)
    raw: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.criteria) and all(c.success for c in self.criteria)


def field_of(data: dict[str, Any], snake: str) -> Any:
    """A RunnerStatus field: the runner writes camelCase (dataclass-wizard), older ones snake."""
    head, *rest = snake.split("_")
    camel = head + "".join(part.title() for part in rest)
    return data.get(camel, data.get(snake))


def parse_status(status: dict[str, Any]) -> tuple[dict[str, bool], list[Criterion]]:
    """Each step (completed or not) and each criterion of a RunnerStatus (from /status or the
    finalize zip)."""
    steps = {
        name: bool(entry and field_of(entry, "completed_at"))
        for name, entry in (field_of(status, "step_status") or {}).items()
    }
    criteria = [
        Criterion(str(c.get("type")), bool(c.get("success")), str(c.get("details", "")))
        for c in status.get("criteria") or []
    ]
    return steps, criteria


def parse_finalize_zip(data: bytes) -> ProcedureSummary:
    """The summary JSON inside the runner's zip (bounded: a hostile zip must not blow up)."""
    if len(data) > MAX_ZIP_BYTES:
        raise ValueError(f"finalize zip of {len(data)} bytes")
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = archive.namelist()
        summary_names = [n for n in names if n.startswith("CactusTestProcedureSummary")]
        if not summary_names:
            errors = [n for n in names if "rror" in n]
            detail = archive.read(errors[0])[:4000].decode(errors="replace") if errors else ""
            raise AssertionError(f"no summary in the finalize zip {names}: {detail}")
        info = archive.getinfo(summary_names[0])
        if info.file_size > MAX_SUMMARY_BYTES:
            raise ValueError(f"summary of {info.file_size} bytes")
        status = json.loads(archive.read(info))
        errors = [
            archive.read(n)[:4000].decode(errors="replace")
            for n in names
            if n.endswith("errors.txt")
        ]
    steps, criteria = parse_status(status)
    return ProcedureSummary(
        test_procedure=str(field_of(status, "test_procedure_name") or ""),
        status_summary=str(field_of(status, "status_summary") or ""),
        steps=steps,
        criteria=criteria,
        files=names,
        errors=errors,
        raw=status,
    )


@dataclass
class CactusRunner:
    """A running CACTUS runner and the envoy behind it."""

    url: str
    envoy: EnvoyServer
    venv: Path
    service: Service

    def headers(self, identity: TestIdentity) -> dict[str, str]:
        """The 2030.5 headers of a client with `identity`, for requests to `url`."""
        return self.envoy.headers(identity)

    def procedure_yaml(self, test_id: str) -> str:
        import subprocess

        return subprocess.run(
            [str(venv_python(self.venv)), "-c", _PROCEDURE_YAML, test_id],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    def run_request(self, test_id: str, pem: str, *, aggregator: bool = True) -> dict[str, Any]:
        """A cactus_schema RunRequest for one procedure and one certificate."""
        return {
            "run_id": f"v2g-{secrets.token_hex(4)}",
            "test_definition": {
                "test_procedure_id": test_id,
                "yaml_definition": self.procedure_yaml(test_id),
            },
            "run_group": {
                "run_group_id": "v2g-tests",
                "name": "v2g tests",
                "csip_aus_version": CSIP_AUS_VERSION,
                "test_certificates": {
                    "aggregator": pem if aggregator else None,
                    "device": None if aggregator else pem,
                },
            },
            "test_config": {"subscription_domain": "127.0.0.1", "is_static_url": False, "pen": 0},
            "test_user": {"user_id": "v2g-tests", "name": "v2g tests"},
        }

    async def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        async with httpx.AsyncClient(base_url=self.url, timeout=60) as client:
            return await client.request(method, path, **kwargs)

    async def initialise(
        self, test_id: str, pem: str, *, aggregator: bool = True
    ) -> dict[str, Any]:
        answer = await self._call(
            "POST",
            "/initialise",
            content=json.dumps(self.run_request(test_id, pem, aggregator=aggregator)),
        )
        assert answer.status_code == 201, (
            f"initialise {test_id}: {answer.status_code} {answer.text}"
        )
        return dict(answer.json())

    async def start(self) -> dict[str, Any]:
        answer = await self._call("POST", "/start")
        assert answer.status_code == 200, f"start: {answer.status_code} {answer.text}"
        return dict(answer.json())

    async def status(self) -> dict[str, Any]:
        answer = await self._call("GET", "/status")
        assert answer.status_code == 200, f"status: {answer.status_code} {answer.text}"
        return dict(answer.json())

    async def finalize(self) -> ProcedureSummary:
        answer = await self._call("POST", "/finalize")
        assert answer.status_code == 200, f"finalize: {answer.status_code} {answer.text[:2000]}"
        return parse_finalize_zip(answer.content)

    async def run_procedure(
        self,
        test_id: str,
        pem: str,
        client: Callable[[str], Awaitable[None]] | None = None,
        *,
        aggregator: bool = True,
    ) -> ProcedureSummary:
        """Initialise `test_id` with `pem`, start it unless it starts at once, let `client`
        (given the runner's URL) do its 2030.5 exchange, then finalize: the parsed summary."""
        init = await self.initialise(test_id, pem, aggregator=aggregator)
        if not field_of(init, "is_started"):
            await self.start()
        if client is not None:
            await client(self.url)
        return await self.finalize()


def _runner_workdir(workdir: Path) -> Path:
    """The runner reads config/logging/config.json and writes logs/ under its working folder."""
    folder = workdir / "runner"
    (folder / "config" / "logging").mkdir(parents=True, exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    shutil.copyfile(
        vendor_dir() / "cactus-runner-config" / "logging" / "config.json",
        folder / "config" / "logging" / "config.json",
    )
    return folder


def psycopg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


@contextlib.asynccontextmanager
async def running_cactus(
    venv: Path, base_postgres_url: str, workdir: Path, identity: TestIdentity | None = None
) -> AsyncIterator[CactusRunner]:
    """envoy on a fresh database and the CACTUS runner in front of it, all on loopback."""
    venv = absolute_folder(venv, workdir)
    async with running_envoy(
        venv, base_postgres_url, workdir, identity or make_identity()
    ) as envoy:
        folder = _runner_workdir(workdir)
        port = free_port()
        env = clean_env(
            {
                "DATABASE_URL": psycopg_url(envoy.database_url),
                "SERVER_URL": envoy.base_url,
                "ENVOY_ADMIN_URL": envoy.admin_url,
                "ENVOY_ADMIN_BASICAUTH_USERNAME": envoy.admin_auth[0],
                "ENVOY_ADMIN_BASICAUTH_PASSWORD": envoy.admin_auth[1],
                "CERT_HEADER": CERT_HEADER,
                "APP_HOST": "127.0.0.1",
                "APP_PORT": str(port),
            }
        )
        service = await start_service(
            "cactus-runner",
            [str(venv_python(venv)), "-c", _RUN_RUNNER],
            env,
            folder,
            f"http://127.0.0.1:{port}",
            "/health",
        )
        try:
            yield CactusRunner(url=service.url, envoy=envoy, venv=venv, service=service)
        finally:
            await service.stop()


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """`app` on a loopback port (uvicorn, in this process): the client's notification endpoint."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), "uvicorn did not start"
        await asyncio.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
