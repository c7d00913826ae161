"""The command-line flags every subcommand shares, and turning parsed flags into :class:`Settings`.

Flags override the environment and the file (see :mod:`xiaozhi_hub.settings`); subcommands add them
with ``suppress=True`` so a flag given before the subcommand is not reset by the subparser's default.
"""

from __future__ import annotations

import argparse

from .loading import Settings, load, shortcut_overrides
from .validators import LOG_LEVELS


def add_common_flags(parser: argparse.ArgumentParser, suppress: bool = False) -> None:
    d = argparse.SUPPRESS if suppress else None
    parser.add_argument("--config", metavar="FILE", default=d, help="hub.yaml to read (env XIAOZHI_CONFIG)")
    parser.add_argument("--ws-port", type=int, default=d, help="WebSocket port for devices (default 8000)")
    parser.add_argument("--http-port", type=int, default=d, help="HTTP port: OTA, API, status (default 8003)")
    parser.add_argument("--data-dir", default=d, help="folder for the database, firmware and secrets (default ./data)")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default=d, help="log verbosity (default info)")
    parser.add_argument("--check-config", action="store_true", default=d,
                        help="validate the settings, print the effective ones (secrets hidden) and exit")


def settings_from_args(args: argparse.Namespace) -> Settings:
    # Flags a subcommand suppressed are absent from the namespace, hence getattr with a default.
    overrides = shortcut_overrides(ws_port=getattr(args, "ws_port", None), http_port=getattr(args, "http_port", None),
                                   data_dir=getattr(args, "data_dir", None), log_level=getattr(args, "log_level", None))
    return load(getattr(args, "config", None), overrides=overrides)
