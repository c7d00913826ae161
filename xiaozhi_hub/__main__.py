"""Command line: ``xiaozhi-hub [serve] [--config hub.yaml] [flags]`` and management subcommands.

Each command module exposes ``register(subparsers)`` adding its parser with ``set_defaults(func=...)``;
the function receives ``(args, settings)`` and returns an exit code. The modules are listed here:
``serve`` (:mod:`xiaozhi_hub.app`), ``models``/``init-config`` (:mod:`xiaozhi_hub.models.cli`),
``devices``/``firmware`` (:mod:`xiaozhi_hub.net.cli`), ``token`` (:mod:`xiaozhi_hub.services.admin_token`),
``say`` (:mod:`xiaozhi_hub.net.api_cli`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Sequence

from . import __version__, app, offline
from .config_check import render as render_settings
from .models import cli as models_cli
from .net import api_cli
from .net import cli as net_cli
from .services import admin_token
from .settings import ConfigError, add_common_flags, environment_notes, settings_from_args

__all__ = ["add_common_flags", "build_parser", "main", "settings_from_args"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xiaozhi-hub",
        description="Fully local voice-assistant hub for stock xiaozhi ESP32 devices.",
        epilog="Without a subcommand the hub is served. Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.")
    parser.add_argument("--version", action="version", version=f"xiaozhi-hub {__version__}")
    add_common_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    app.register(sub)
    models_cli.register(sub)
    net_cli.register(sub)
    admin_token.register(sub)
    api_cli.register(sub)
    return parser


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    offline.apply()  # before any subcommand module imports huggingface_hub or onnxruntime
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args(["serve", *(argv if argv is not None else sys.argv[1:])])
    try:
        settings = settings_from_args(args)
    except ConfigError as err:
        print(f"xiaozhi-hub: configuration error: {err}", file=sys.stderr)
        return 2
    if getattr(args, "check_config", False):
        print(render_settings(settings), end="")
        return 0
    setup_logging(settings.log_level)
    for note in environment_notes(settings):       # once per run: stray XIAOZHI_* variables, a borrowed data folder
        logging.getLogger("xiaozhi_hub").warning("%s", note)
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 0
    except ConfigError as err:
        print(f"xiaozhi-hub: configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
