"""The `csms` console command's entry point: check that the CSMS is installed, then run its CLI.

The base install of the distribution is the charge-point agent alone; the CSMS's own
dependencies come with the `csms` extra. Without them this prints one line naming the install
command and exits 2, instead of a traceback from deep inside an import. It imports only the
standard library before that check (find_spec looks for a module without importing it).
"""

from __future__ import annotations

import importlib.util
import sys

DISTRIBUTION = "v2g-platform"
EXTRA = "csms"
EXIT_USAGE = 2

# The `csms` extra in pyproject.toml: distribution name -> the module it provides
# (tests/unit/test_packaging.py keeps the two lists equal).
EXTRA_MODULES: dict[str, str] = {
    "sqlalchemy": "sqlalchemy",
    "aiosqlite": "aiosqlite",
    "asyncpg": "asyncpg",
    "alembic": "alembic",
    "fastapi": "fastapi",
    "fastapi-offline": "fastapi_offline",
    "uvicorn": "uvicorn",
    "argon2-cffi": "argon2",
    "cryptography": "cryptography",
    "fastjsonschema": "fastjsonschema",
    "jsonschema-rs": "jsonschema_rs",
    "orjson": "orjson",
    "uvloop": "uvloop",
    "numpy": "numpy",
    "scipy": "scipy",
    "highspy": "highspy",
    "prometheus-client": "prometheus_client",
    "python-json-logger": "pythonjsonlogger",
    "nats-py": "nats",
    "redis": "redis",
    "aiomqtt": "aiomqtt",
    "httpx": "httpx",
    "envoy-schema": "envoy_schema",
    "pydantic-xml": "pydantic_xml",
    "lxml": "lxml",
    "rainflow": "rainflow",
    "matplotlib": "matplotlib",
}
# Installed only where they can be (environment markers in pyproject.toml).
OPTIONAL_MODULES = frozenset({"uvloop"} if sys.platform == "win32" else ())


def missing_modules() -> list[str]:
    """The `csms` extra's modules that cannot be found, in declaration order."""
    missing = []
    for module in EXTRA_MODULES.values():
        if module in OPTIONAL_MODULES:
            continue
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def main(argv: list[str] | None = None) -> int:
    missing = missing_modules()
    if missing:
        named = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        print(
            f"csms: the CSMS is not installed (missing {named}); "
            f"install it with: pip install '{DISTRIBUTION}[{EXTRA}]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from csms.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
