"""The built wheel declares what pyproject.toml says: base dependencies (the agent's), the `csms`
and `dev` extras, both console commands, and every package including the shared core.

Built with `pip wheel --no-deps` from a copy of the source tree (setuptools' in-tree build/
directory can hold modules that no longer exist).
"""

from __future__ import annotations

import configparser
import email
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("csms", "chargepoint_firmware", "v2g_shared", "v2g_demo")


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (built,) = out.glob("*.whl")
    return zipfile.ZipFile(built)


def test_wheel_metadata_declares_the_base_dependencies_and_extras(
    wheel: zipfile.ZipFile,
) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (metadata_name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    metadata = email.message_from_bytes(wheel.read(metadata_name))
    assert metadata["Name"] == project["name"]
    requires = metadata.get_all("Requires-Dist") or []
    base = {requirement_name(r) for r in requires if "extra ==" not in r}
    assert base == {requirement_name(r) for r in project["dependencies"]}
    assert base == {
        "ocpp",
        "websockets",
        "python-can",
        "pydantic",
        "pydantic-settings",
        "jsonschema",
    }
    assert set(metadata.get_all("Provides-Extra") or []) == {"csms", "dev"}
    for name in ("csms", "dev"):
        declared = {
            requirement_name(r) for r in requires if re.search(rf'extra\s*==\s*"{name}"', r)
        }
        assert declared == {requirement_name(r) for r in project["optional-dependencies"][name]}
    csms_extra = {requirement_name(r) for r in requires if 'extra == "csms"' in r}
    assert {"fastapi", "sqlalchemy", "alembic", "highspy", "scipy", "uvicorn"} <= csms_extra


def test_wheel_holds_every_package_and_both_commands(wheel: zipfile.ZipFile) -> None:
    names = wheel.namelist()
    top = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top == set(PACKAGES)
    assert "v2g_shared/schedule/model.py" in names
    assert "csms/entry.py" in names
    assert "v2g_demo/run.py" in names
    (entry_points_name,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(entry_points_name).decode())
    assert dict(entry_points["console_scripts"]) == {
        "csms": "csms.entry:main",
        "chargepoint": "chargepoint_firmware.cli:main",
    }


def test_wheel_holds_the_dashboard_and_its_vendored_chart_library(wheel: zipfile.ZipFile) -> None:
    """The dashboard works offline: every file it loads is in the wheel, uPlot with its licence."""
    names = set(wheel.namelist())
    static = "csms/dashboard/static/"
    for name in (
        "index.html",
        "app.js",
        "api.js",
        "charts.js",
        "forms.js",
        "style.css",
        "view_overview.js",
        "view_stations.js",
        "view_station.js",
        "view_v2g.js",
        "vendor/uPlot.iife.min.js",
        "vendor/uPlot.min.css",
        "vendor/uPlot.LICENSE.txt",
        "vendor/VENDORED.md",
    ):
        assert static + name in names, name
    index = wheel.read(static + "index.html").decode()
    assert "http://" not in index and "https://" not in index  # no CDN
