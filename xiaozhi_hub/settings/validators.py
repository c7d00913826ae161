"""Validators shared by the settings sections (voluptuous callables with one-line messages)."""

from __future__ import annotations

from typing import Any

import voluptuous as vol

LOG_LEVELS = ("debug", "info", "warning", "error")


def port(v: Any) -> int:
    v = vol.Coerce(int)(v)
    if not 0 <= v <= 65535:
        raise vol.Invalid("must be a port number 0-65535 (0 = pick a free port)")
    return v


def positive(kind: type = float) -> vol.All:
    return vol.All(vol.Coerce(kind), vol.Range(min=0, min_included=False))


def non_negative(kind: type = float) -> vol.All:
    return vol.All(vol.Coerce(kind), vol.Range(min=0))


str_list = vol.All(vol.Any(None, [vol.Coerce(str)]), lambda v: tuple(v or ()))
opt_str = vol.Any(None, vol.Coerce(str))
opt_path = vol.Any(None, vol.Coerce(str))


def log_level(v: Any) -> str:
    s = str(v).lower()
    if s not in LOG_LEVELS:
        raise vol.Invalid(f"must be one of {', '.join(LOG_LEVELS)}")
    return s
