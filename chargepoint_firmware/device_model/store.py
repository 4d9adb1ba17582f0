"""Persistence for the device model: a JSON file written atomically, and an in-memory store.

`JsonFileStore` keeps all values in one small JSON object (key -> OCPP string value). Each save
writes a temporary file in the same directory, fsyncs it, `os.replace`s it over the old one and
fsyncs the directory, so a power cut leaves either the old or the new file, never a torn one.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path


class InMemoryStore:
    """For tests: keeps values in a dict (share one instance to simulate a restart)."""

    def __init__(self, initial: dict[str, str] | None = None) -> None:
        self.values: dict[str, str] = dict(initial or {})

    def load(self) -> dict[str, str]:
        return dict(self.values)

    def save(self, key: str, value: str) -> None:
        self.values[key] = value


class JsonFileStore:
    """Values in one JSON file; missing file = empty; a corrupt file raises ValueError."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._values: dict[str, str] | None = None

    def load(self) -> dict[str, str]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._values = {}
            return {}
        data = json.loads(text)
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise ValueError(f"{self.path}: not a JSON object of strings")
        self._values = dict(data)
        return dict(data)

    def save(self, key: str, value: str) -> None:
        if self._values is None:
            self.load()
        assert self._values is not None
        if self._values.get(key) == value:
            return
        self._values[key] = value
        self._write(self._values)

    def _write(self, values: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(values, handle, indent=1, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # Make the rename itself durable.
        with contextlib.suppress(OSError):
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
