"""The charge-point agent installs and runs without the CSMS and its dependencies.

A fresh interpreter gets an import hook that makes the CSMS's packages (and the CSMS itself)
impossible to import, as on a charger where only the base distribution is installed; then every
module of the agent and of the shared core is imported and the `chargepoint` command runs. The
`csms` command in that interpreter says, in one line, which extra to install, and exits 2.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What `pip install v2g-platform` (no extra) does not bring, plus the other product.
ABSENT = (
    "fastapi",
    "starlette",
    "sqlalchemy",
    "alembic",
    "aiosqlite",
    "asyncpg",
    "highspy",
    "scipy",
    "numpy",
    "uvicorn",
    "uvloop",
    "httpx",
    "nats",
    "redis",
    "aiomqtt",
    "orjson",
    "fastjsonschema",
    "argon2",
    "prometheus_client",
    "rainflow",
    "csms",
    "v2g_demo",
)

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, sys
    ABSENT = set({absent!r})
    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ABSENT:
                raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)", name=name)
            return None
    sys.meta_path.insert(0, Absent())
    """
)


def run_without_csms(body: str) -> subprocess.CompletedProcess[str]:
    # csms.entry must still be loadable to show its message: it is unblocked on purpose below.
    code = BLOCKER.format(absent=ABSENT) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=90
    )


def test_every_agent_module_imports_without_the_csms_dependencies() -> None:
    result = run_without_csms(
        """
        import importlib, pkgutil
        import chargepoint_firmware, v2g_shared
        names = []
        for package in (chargepoint_firmware, v2g_shared):
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                if info.name.endswith(".__main__"):
                    continue  # runs the command on import
                importlib.import_module(info.name)
                names.append(info.name)
        leaked = sorted(m for m in sys.modules if m.split(".")[0] in ABSENT)
        assert not leaked, leaked
        print(len(names), "modules")
        """
    )
    assert result.returncode == 0, result.stderr
    count = int(result.stdout.split()[0])
    assert count > 40


def test_chargepoint_command_runs_without_the_csms_dependencies() -> None:
    result = run_without_csms(
        """
        import contextlib, io
        from chargepoint_firmware.cli import main
        for argv in (["--help"], ["simulate", "--help"]):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                try:
                    code = main(argv)
                except SystemExit as done:
                    code = done.code
            assert code in (0, None), (argv, code)
            assert "usage:" in out.getvalue(), out.getvalue()
        code = main(["check-config", "--config", "tests/data/agent/station.toml"])
        assert code == 0, code
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_csms_command_without_its_extra_names_the_install_command() -> None:
    # Only the CSMS's dependencies are missing here; the csms package itself is present.
    result = run_without_csms(
        """
        ABSENT.discard("csms")
        from csms.entry import main
        sys.exit(main(["serve"]))
        """
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "pip install 'v2g-platform[csms]'" in lines[0]
    assert result.stdout == ""
