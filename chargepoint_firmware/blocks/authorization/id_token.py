"""IdTokenType helpers: one spelling (the library's snake_case) and token equality."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def normalize_id_token(id_token: Mapping[str, Any]) -> dict[str, Any]:
    """IdTokenType in the library's snake_case form, from either spelling."""
    token = id_token.get("id_token", id_token.get("idToken"))
    if not token or not id_token.get("type"):
        raise ValueError("an idToken needs id_token (idToken) and type")
    out: dict[str, Any] = {"id_token": str(token), "type": str(id_token["type"])}
    extra = id_token.get("additional_info", id_token.get("additionalInfo"))
    if extra:
        out["additional_info"] = [
            {
                "additional_id_token": a.get("additional_id_token", a.get("additionalIdToken")),
                "type": a["type"],
            }
            for a in extra
        ]
    return out


def same_token(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    def key(t: Mapping[str, Any]) -> tuple[str, str]:
        return str(t.get("id_token", t.get("idToken"))), str(t.get("type"))

    return key(a) == key(b)
