"""A real CSIP-AUS (IEEE 2030.5) utility server for the tests: envoy 1.5.0, the ANU's reference
server, in its own Python 3.12 venv (vendored wheels plus pinned PyPI packages, cached under
~/.cache/v2g-csip/<version>). `python -m tests.support.csip_server ensure [venv]` creates it
(.ci/run). `running_envoy(venv)` gives a fresh database, envoy's 2030.5 and admin APIs on
loopback ports and an aggregator with a current test certificate; the CACTUS runner driver is in
tests/support/csip_cactus.py.

The client's certificate reaches envoy in the `ssl-client-cert` header, as a TLS-terminating
proxy would pass it (loopback only): see `EnvoyServer.cert_header_value`.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import glob
import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

ENVOY_VERSION = "1.5.0"
ENVOY_WHEEL = f"envoy-{ENVOY_VERSION}-py3-none-any.whl"
RUNNER_WHEEL = "cactus_runner-1.14.0-py3-none-any.whl"
# dateutil 4.0 makes envoy's /tm answer 500; the runner was released with these two.
PINS = (
    "python-dateutil==2.9.0.post0",
    "cactus-test-definitions==1.15.0",
    "cactus-schema==1.3.1",
)
MARKER = ".v2g-csip-ready"
DEFAULT_VENV = Path.home() / ".cache" / "v2g-csip" / f"envoy-{ENVOY_VERSION}"
REPO = Path(__file__).resolve().parents[2]

CERT_HEADER = "ssl-client-cert"
ADMIN_USER = "csip-test-admin"
ADMIN_PASSWORD = "csip-test-admin-pass-0001"  # loopback-only test server
START_TIMEOUT_S = 120.0


# ---- the venv ---------------------------------------------------------------------------------


def vendor_dir() -> Path:
    """The folder with the vendored wheels: CSMS_TEST_CSIP_VENDOR, else the nearest `shared/vendor`
    holding the envoy wheel above the repository (worktrees sit beside /work/main, so a fixed
    number of parents would miss it)."""
    configured = os.environ.get("CSMS_TEST_CSIP_VENDOR")
    if configured:
        return Path(configured)
    for parent in REPO.parents:
        candidate = parent / "shared" / "vendor"
        if (candidate / ENVOY_WHEEL).exists():
            return candidate
    return REPO.parent / "shared" / "vendor"


def marker_text() -> str:
    return "\n".join((ENVOY_WHEEL, RUNNER_WHEEL, *PINS)) + "\n"


def find_python312() -> str:
    roots = []
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        roots.append(
            subprocess.run(
                ["pyenv", "root"], capture_output=True, text=True, check=True
            ).stdout.strip()
        )
    roots.append(str(Path.home() / ".pyenv"))
    for root in roots:
        for candidate in sorted(glob.glob(f"{root}/versions/3.12.*/bin/python"), reverse=True):
            if Path(candidate).exists():
                return candidate
    raise RuntimeError("no Python 3.12 found (pyenv: <pyenv root>/versions/3.12.*)")


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def is_ready(venv: Path) -> bool:
    marker = venv / MARKER
    return marker.exists() and marker.read_text() == marker_text()


def ensure(venv: Path = DEFAULT_VENV) -> Path:
    """The envoy + CACTUS venv, created and filled when missing or made with other pins."""
    if is_ready(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    # Several test runs on one machine may share the cached venv: one fills it, the others wait.
    with (venv.parent / f".{venv.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_ready(venv):
            _fill(venv)
    return venv


def _fill(venv: Path) -> None:
    vendor = vendor_dir()
    wheels = [vendor / ENVOY_WHEEL, vendor / RUNNER_WHEEL]
    missing = [str(w) for w in wheels if not w.exists()]
    if missing:
        raise RuntimeError(f"vendored wheels missing (CSMS_TEST_CSIP_VENDOR?): {missing}")
    python = venv_python(venv)
    if not python.exists():
        subprocess.run([find_python312(), "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, *map(str, wheels), *PINS], check=True)
    (venv / MARKER).write_text(marker_text())


def venv_and_postgres_or_skip() -> tuple[Path, str]:
    """For a test: the ready venv (made when missing: CSMS_TEST_CSIP_VENV or the default) and
    CSMS_TEST_POSTGRES_URL. Skips without the URL; with it, a venv that cannot be made fails."""
    from tests.support.csms_db import postgres_url_or_skip

    url = postgres_url_or_skip()
    return ensure(Path(os.environ.get("CSMS_TEST_CSIP_VENV", DEFAULT_VENV))), url


def envoy_package_dir(venv: Path) -> Path:
    out = subprocess.run(
        [str(venv_python(venv)), "-c", "import envoy, os; print(os.path.dirname(envoy.__file__))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return Path(out)


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "ensure":
        venv = (
            Path(argv[1])
            if len(argv) > 1
            else Path(os.environ.get("CSMS_TEST_CSIP_VENV", DEFAULT_VENV))
        )
        print(ensure(venv))
        return 0
    print("usage: python -m tests.support.csip_server ensure [venv]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# ---- a test identity ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TestIdentity:
    """A self-signed P-256 certificate and its 2030.5 identifiers."""

    cert_pem: str
    key_pem: str
    lfdi: str  # first 20 bytes of the SHA-256 of the DER certificate, 40 hex digits
    sfdi: int  # first 36 bits of the LFDI in decimal, then a sum-of-digits check digit


def sfdi_of(lfdi: str) -> int:
    raw = int(lfdi[:9], 16)
    check = (10 - sum(int(d) for d in str(raw)) % 10) % 10
    return raw * 10 + check


def make_identity(common_name: str = "v2g-test-aggregator") -> TestIdentity:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    lfdi = hashlib.sha256(der).hexdigest()[:40]
    return TestIdentity(
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
        lfdi=lfdi,
        sfdi=sfdi_of(lfdi),
    )


def cert_header_value(cert_pem: str) -> str:
    """The PEM as one header line (URL-encoded, as nginx's $ssl_client_escaped_cert)."""
    return urllib.parse.quote(cert_pem, safe="")


# ---- processes ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """Only what the process needs: envoy's settings read any matching variable of ours."""
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TZ")}
    return {**keep, "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class Service:
    """One server process whose output goes to a log file."""

    name: str
    url: str  # http://127.0.0.1:<port>
    process: asyncio.subprocess.Process
    log_path: Path

    def log_tail(self, chars: int = 3000) -> str:
        if not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-chars:]

    async def stop(self) -> None:
        if self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def start_service(
    name: str, argv: list[str], env: dict[str, str], cwd: Path, url: str, ready_path: str
) -> Service:
    """Start `argv` (serving `url`); wait until `ready_path` answers 200. On failure: stop it,
    raise with its log's tail."""
    import httpx

    log_path = cwd / f"{name}.log"
    with log_path.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(cwd)
        )
    service = Service(name, url, process, log_path)
    ready_url = url + ready_path
    deadline = time.monotonic() + START_TIMEOUT_S
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            if process.returncode is not None:
                raise AssertionError(f"{name} exited ({process.returncode}): {service.log_tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(ready_url)).status_code == 200:
                    return service
            if time.monotonic() > deadline:
                await service.stop()
                raise AssertionError(f"{name} did not start: {service.log_tail()}")
            await asyncio.sleep(0.3)


async def migrate(venv: Path, env: dict[str, str]) -> None:
    """envoy's alembic migrations: its alembic.ini names ./alembic, so run in envoy/server."""
    server_dir = envoy_package_dir(venv) / "server"
    process = await asyncio.create_subprocess_exec(
        str(venv / "bin" / "alembic"),  # not -m: envoy/server/alembic would shadow the package
        "upgrade",
        "head",
        cwd=str(server_dir),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    if process.returncode != 0:
        raise AssertionError(f"envoy migrations failed: {out.decode(errors='replace')[-3000:]}")


# ---- envoy -------------------------------------------------------------------------------------


@dataclass
class EnvoyServer:
    """A running envoy: its 2030.5 API, its admin API and the test aggregator."""

    base_url: str
    admin_url: str
    admin_auth: tuple[str, str]
    identity: TestIdentity
    aggregator_id: int
    database_url: str  # postgresql+asyncpg://..., the envoy database
    services: list[Service] = field(default_factory=list)

    @property
    def cert_pem(self) -> str:
        return self.identity.cert_pem

    @property
    def key_pem(self) -> str:
        return self.identity.key_pem

    @property
    def lfdi(self) -> str:
        return self.identity.lfdi

    def headers(self, identity: TestIdentity | None = None) -> dict[str, str]:
        """What a 2030.5 request carries: the client certificate header and sep+xml."""
        pem = (identity or self.identity).cert_pem
        return {CERT_HEADER: cert_header_value(pem), "Accept": "application/sep+xml"}


def envoy_env(database_url: str) -> dict[str, str]:
    return clean_env(
        {
            "DATABASE_URL": database_url,
            "CERT_HEADER": CERT_HEADER,
            "ALLOW_DEVICE_REGISTRATION": "true",
            "ENABLE_NOTIFICATIONS": "true",
            "ADMIN_USERNAME": ADMIN_USER,
            "ADMIN_PASSWORD": ADMIN_PASSWORD,
        }
    )


def asyncpg_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)


async def register_aggregator(database_url: str, identity: TestIdentity) -> int:
    """The NULL aggregator (device registration needs it), one aggregator with the identity's
    certificate, and loopback as its notification domain (envoy checks subscription hosts)."""
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sa.text(
                    "INSERT INTO aggregator(aggregator_id, name, created_time, changed_time)"
                    " VALUES (0, 'NULL AGGREGATOR', now(), now())"
                )
            )
            aggregator_id = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO aggregator(name, created_time, changed_time)"
                        " VALUES ('v2g test aggregator', now(), now()) RETURNING aggregator_id"
                    )
                )
            ).scalar_one()
            certificate_id = (
                await conn.execute(
                    sa.text(
                        "INSERT INTO certificate(lfdi, created, expiry) VALUES"
                        " (:lfdi, now(), now() + interval '30 days') RETURNING certificate_id"
                    ),
                    {"lfdi": identity.lfdi},
                )
            ).scalar_one()
            await conn.execute(
                sa.text(
                    "INSERT INTO aggregator_certificate_assignment(certificate_id, aggregator_id)"
                    " VALUES (:c, :a)"
                ),
                {"c": certificate_id, "a": aggregator_id},
            )
            for domain in ("127.0.0.1", "localhost"):
                await conn.execute(
                    sa.text(
                        "INSERT INTO aggregator_domain(aggregator_id, created_time, changed_time,"
                        " domain) VALUES (:a, now(), now(), :d)"
                    ),
                    {"a": aggregator_id, "d": domain},
                )
    finally:
        await engine.dispose()
    return int(aggregator_id)


async def start_envoy_apis(venv: Path, database_url: str, workdir: Path) -> list[Service]:
    """envoy's 2030.5 API and admin API on free loopback ports (workdir: no .env there)."""
    env = envoy_env(database_url)
    # Keep-alive far beyond uvicorn's 5 s: the CACTUS runner reuses pooled connections to the
    # admin API, and one reused just as uvicorn closed it idle fails the runner's action with
    # "Server disconnected" (seen between two procedures ~5 s apart).
    uvicorn = [
        str(venv_python(venv)),
        "-m",
        "uvicorn",
        "--host",
        "127.0.0.1",
        "--no-access-log",
        "--timeout-keep-alive",
        "300",
    ]
    server_port, admin_port = free_port(), free_port()
    server = await start_service(
        "envoy",
        [*uvicorn, "--port", str(server_port), "envoy.server.main:app"],
        env,
        workdir,
        f"http://127.0.0.1:{server_port}",
        "/status/health?check_data=false",
    )
    try:
        admin = await start_service(
            "envoy-admin",
            [*uvicorn, "--port", str(admin_port), "envoy.admin.main:app"],
            env,
            workdir,
            f"http://127.0.0.1:{admin_port}",
            "/status/health?check_data=false",
        )
    except BaseException:
        await server.stop()
        raise
    return [server, admin]


def absolute_folder(venv: Path, workdir: Path) -> Path:
    """`venv` made absolute (the processes run in other folders); `workdir` created."""
    workdir.mkdir(parents=True, exist_ok=True)
    return venv.absolute()


@contextlib.asynccontextmanager
async def running_envoy(
    venv: Path, base_postgres_url: str, workdir: Path, identity: TestIdentity | None = None
) -> AsyncIterator[EnvoyServer]:
    """A fresh `csip_<random>` database on `base_postgres_url`'s server (dropped after), envoy
    migrated into it, the test aggregator registered, both APIs running on loopback."""
    from tests.support.csms_db import fresh_postgres_database

    venv = absolute_folder(venv, workdir)
    identity = identity or make_identity()
    async with fresh_postgres_database(asyncpg_url(base_postgres_url), prefix="csip_") as url:
        await migrate(venv, envoy_env(url))
        aggregator_id = await register_aggregator(url, identity)
        services = await start_envoy_apis(venv, url, workdir)
        server = EnvoyServer(
            base_url=services[0].url,
            admin_url=services[1].url,
            admin_auth=(ADMIN_USER, ADMIN_PASSWORD),
            identity=identity,
            aggregator_id=aggregator_id,
            database_url=url,
            services=services,
        )
        try:
            yield server
        finally:
            for service in reversed(services):
                await service.stop()
