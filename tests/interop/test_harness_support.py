"""When the Node harness cannot run: skip on a laptop, fail under CI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import interop


def test_missing_node_modules_skips_locally(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(interop, "INTEROP_DIR", tmp_path)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="node_modules is missing"):
        interop.require_node()


@pytest.mark.parametrize("ci_value", ["true", "1"])
def test_missing_node_modules_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci_value: str
) -> None:
    monkeypatch.setattr(interop, "INTEROP_DIR", tmp_path)
    monkeypatch.setenv("CI", ci_value)
    with pytest.raises(pytest.fail.Exception, match="CI is set"):
        interop.require_node()


def test_missing_node_binary_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(interop.shutil, "which", lambda _name: None)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="`node` is not on PATH"):
        interop.require_node()
