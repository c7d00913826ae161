"""``xiaozhi-hub --check-config``: validate the settings and print the effective ones, then exit.

The printout is YAML in hub.yaml's own layout (defaults filled in, environment variables and flags
applied), so it can be diffed or fed back. Secrets are shown as ``"***"`` (set) or ``null`` (unset):
whatever a key named ``password``, ``secret``, ``token``, ``tokens`` or ``api_key`` holds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import yaml

from .settings import Settings

SECRET_KEYS = frozenset({"password", "secret", "token", "tokens", "api_key"})
REDACTED = "***"


def _redact(value: Any, key: str | None = None) -> Any:
    if key in SECRET_KEYS:
        return REDACTED if value else value
    if isinstance(value, dict):
        return {k: _redact(v, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact(v) for v in value]
    return value


def effective(settings: Settings) -> dict[str, Any]:
    """The settings as a plain mapping in hub.yaml's layout, secrets redacted."""
    data = dataclasses.asdict(settings)
    data.pop("source", None)          # where they came from, not a setting (it is in the header line)
    return _redact(data)


def render(settings: Settings) -> str:
    header = f"# effective settings (from {settings.source or 'defaults'}); the hub was not started\n"
    return header + yaml.safe_dump(effective(settings), sort_keys=False, allow_unicode=True)
