"""setuptools: the project's metadata is in pyproject.toml; this file only lists the packages.

The Alembic migrations stay in the top-level `migrations/` folder of the source tree (where
`alembic` and contributors look for them) and are installed as the package `csms._migrations`,
so that a non-editable install carries them (csms/persistence/migrate.py finds them there).
pyproject.toml's `packages.find` cannot map a folder to a package under another name.
"""

from setuptools import find_namespace_packages, setup

# What pyproject's packages.find found before (namespace packages included: data folders).
PACKAGES_INCLUDE = ("csms*", "chargepoint_firmware*", "v2g_shared*", "v2g_demo*")
MIGRATIONS_PACKAGE = "csms._migrations"

setup(
    packages=[
        *find_namespace_packages(include=PACKAGES_INCLUDE, exclude=("*.__pycache__",)),
        MIGRATIONS_PACKAGE,
        f"{MIGRATIONS_PACKAGE}.versions",
    ],
    package_dir={MIGRATIONS_PACKAGE: "migrations"},
)
