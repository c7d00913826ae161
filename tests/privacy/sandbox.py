"""Run a command where nothing can leave the machine, and log everything that tries.

    sudo .venv/bin/python -m tests.privacy.sandbox [--report FILE] [--quiet] -- COMMAND [ARG ...]

Re-runs itself under ``unshare --net --mount`` (a network namespace with only loopback and a private
mount namespace), then sets up the traps of :mod:`tests.privacy.netwatch` (a logging resolver on
127.0.0.1:53 that sends every name to loopback, listeners on :80/:443, a packet capture on ``lo``
with every address routed to it), runs COMMAND and prints one line per attempt as it happens, and a
verdict at the end. Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and util-linux ``unshare``.

Ctrl-C stops COMMAND and still prints the verdict. Inside, every address is routed to ``lo``, so a
program that asks for its LAN address gets a made-up one (the hub prints 10.255.255.255).

Exit status: COMMAND's own if it failed, else 3 if anything tried to leave, else 0; 4 if the
sandbox could not be set up. ``--report`` writes the events as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from .netwatch import EgressLog, Watch, setup_namespace, violations

INSIDE = "XIAOZHI_PRIVACY_SANDBOX"


def unavailable() -> str | None:
    """Why the sandbox cannot run here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root (run as root or with sudo)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs util-linux `unshare` and iproute2 `ip`"
    probe = subprocess.run(["unshare", "--net", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot create namespaces here: {probe.stderr.strip() or probe.returncode}"
    return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.privacy.sandbox", description=__doc__.split("\n\n")[0])
    p.add_argument("--report", help="write the events and the verdict here as JSON")
    p.add_argument("--quiet", action="store_true", help="do not print events as they happen")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND [ARG ...]")
    args = p.parse_args(argv)
    if args.command[:1] == ["--"]:
        args.command = args.command[1:]
    if not args.command:
        p.error("give a command after --")
    return args


def enter(argv: list[str]) -> int:
    """Outside: re-run this module in fresh namespaces."""
    reason = unavailable()
    if reason:
        print(f"sandbox: {reason}", file=sys.stderr)
        return 4
    env = {**os.environ, INSIDE: "1"}
    cmd = ["unshare", "--net", "--mount", "--propagation", "private",
           sys.executable, "-m", "tests.privacy.sandbox", *argv]
    return run_forwarding_ctrl_c(cmd, env)


def run_forwarding_ctrl_c(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd``; on Ctrl-C pass SIGINT on and wait for it to finish, so the report still comes."""
    proc = subprocess.Popen(cmd, env=env)
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            proc.send_signal(signal.SIGINT)


def inside(args: argparse.Namespace) -> int:
    log = EgressLog(echo=not args.quiet)
    with tempfile.TemporaryDirectory(prefix="xiaozhi-sandbox-") as tmp:
        try:
            setup_namespace(Path(tmp))
            watch = Watch(log)
        except (OSError, RuntimeError, subprocess.CalledProcessError) as err:
            print(f"sandbox: cannot set up: {err}", file=sys.stderr)
            return 4
        env = {k: v for k, v in os.environ.items() if k != INSIDE}
        with watch:
            rc = run_forwarding_ctrl_c(args.command, env)
    bad = violations(log.events())
    if args.report:
        Path(args.report).write_text(json.dumps({"command": args.command, "returncode": rc,
                                                 "events": log.as_json(), "violations": bad}, indent=1))
    print(f"sandbox: {len(log.events())} events, {len(bad)} outside the home"
          + "".join(f"\n  {line}" for line in bad), file=sys.stderr)
    return rc if rc else (3 if bad else 0)


def main(argv: list[str] | None = None) -> int:
    raw = sys.argv[1:] if argv is None else argv
    args = parse_args(raw)
    if os.environ.get(INSIDE) != "1":
        return enter(raw)
    return inside(args)


if __name__ == "__main__":
    sys.exit(main())
