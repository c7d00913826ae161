"""Command line: ``xiaozhi-hub [serve] [--config hub.yaml] [flags]`` and management subcommands.

Subcommands are contributed by modules listed in ``COMMANDS``; each exposes
``register(subparsers)`` adding its parser with ``set_defaults(func=...)``; the function receives
``(args, settings)`` and returns an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

from . import __version__
from .settings import LOG_LEVELS, ConfigError, Settings, load, shortcut_overrides

# Modules that add subcommands (imported lazily so a missing optional part never breaks `serve`).
COMMANDS = (
    "xiaozhi_hub.app",              # serve
    "xiaozhi_hub.models",           # models list|install|verify|remove
    "xiaozhi_hub.net.cli",          # devices ..., firmware ...
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xiaozhi-hub",
        description="Fully local voice-assistant hub for stock xiaozhi ESP32 devices.",
        epilog="Without a subcommand the hub is served. Exit codes: 0 ok, 1 runtime error, 2 bad configuration or usage.")
    parser.add_argument("--version", action="version", version=f"xiaozhi-hub {__version__}")
    add_common_flags(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(name)
        except ImportError as err:  # pragma: no cover - a broken optional module
            logging.getLogger(__name__).debug("subcommands of %s unavailable: %s", name, err)
            continue
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


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
    overrides = shortcut_overrides(ws_port=getattr(args, "ws_port", None), http_port=getattr(args, "http_port", None),
                                   data_dir=getattr(args, "data_dir", None), log_level=getattr(args, "log_level", None))
    return load(getattr(args, "config", None), overrides=overrides)


def setup_logging(level: str) -> None:
    logging.basicConfig(level=getattr(logging, level.upper()),
                        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
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
        from .config_check import render

        print(render(settings), end="")
        return 0
    setup_logging(settings.log_level)
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 0
    except ConfigError as err:
        print(f"xiaozhi-hub: configuration error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
