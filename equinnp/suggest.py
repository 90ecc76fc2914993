"""Errors for unknown names that suggest the closest valid one ("did you mean ...?")."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["unknown_key_error"]


def unknown_key_error(key: str, valid: Iterable[str], where: str) -> ValueError:
    """A ``ValueError`` naming an unknown key and the closest valid one."""
    valid = sorted(valid)
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ValueError(f"unknown {where} '{key}'.{hint} Valid: {', '.join(valid)}")
