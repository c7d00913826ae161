"""``xiaozhi-hub say``: make a device speak through a running hub's HTTP API.

Unlike ``devices``/``firmware`` (which work on the database directly), this talks to the running
hub, so it uses the admin token from the data folder (``xiaozhi-hub token``). The hub's address is
``--url`` or ``http://127.0.0.1:<server.http_port>``.

Exit codes: 0 spoken or queued, 1 the hub refused or could not be reached, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ..services.admin_token import AdminToken
from ..settings import Settings, add_common_flags

TIMEOUT = 75.0     # the hub answers a connected device's say within about 60 s


def _post(url: str, token: str, body: dict[str, Any]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as err:
        try:
            return err.code, json.loads(err.read() or b"null")
        except ValueError:
            return err.code, None


def _say(args: argparse.Namespace, settings: Settings) -> int:
    if bool(args.device) == bool(args.all):
        print("xiaozhi-hub: give --device ID or --all", file=sys.stderr)
        return 2
    token = AdminToken.in_data_dir(settings.data_path).current()
    if token is None:
        print(f"xiaozhi-hub: no admin token in {settings.data_path} (has the hub run there? see --data-dir)",
              file=sys.stderr)
        return 1
    base = (args.url or f"http://127.0.0.1:{settings.server.http_port}").rstrip("/")
    path = "/api/say" if args.all else f"/api/devices/{urllib.parse.quote(args.device, safe='')}/say"
    body: dict[str, Any] = {"text": args.text, "priority": args.priority, "wait": not args.no_wait}
    if args.ttl is not None:
        body["ttl"] = args.ttl
    try:
        status, reply = _post(base + path, token, body)
    except (urllib.error.URLError, OSError, ValueError) as err:
        print(f"xiaozhi-hub: cannot reach the hub at {base}: {getattr(err, 'reason', err)}", file=sys.stderr)
        return 1
    if status != 200 or not isinstance(reply, dict):
        reason = reply.get("error") if isinstance(reply, dict) else reply
        print(f"xiaozhi-hub: the hub answered {status}: {reason}", file=sys.stderr)
        return 1
    for result in reply.get("results", [reply]):
        print(f"{result['device_id']}: {result['status']} (id {result['id']})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "say", help="make a device (or every device) speak through the running hub",
        description="Send an announcement through the running hub's API (uses the admin token in the data "
                    "folder). A device that is not connected hears it when it next connects.")
    add_common_flags(p, suppress=True)
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--device", metavar="ID", help="the device id (MAC) or name")
    p.add_argument("--all", action="store_true", help="every known device")
    p.add_argument("--priority", choices=("normal", "now"), default="normal",
                   help="now: interrupt what the device is saying")
    p.add_argument("--ttl", type=float, metavar="SECONDS", help="give up if not delivered within this long")
    p.add_argument("--no-wait", action="store_true", help="return at once instead of when it has been spoken")
    p.add_argument("--url", help="the hub's HTTP address (default http://127.0.0.1:<server.http_port>)")
    p.set_defaults(func=_say)
