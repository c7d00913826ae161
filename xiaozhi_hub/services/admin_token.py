"""The admin token: what every request under ``/api/`` must carry, whatever ``auth.enabled`` says.

Device authentication (``auth.*``, the WebSocket) and API authentication are different things: a
device on the LAN may be admitted without a token, but reading device records or changing state
through the HTTP API always needs ``Authorization: Bearer <admin token>``.

The token is created at the hub's first start in ``<data_dir>/admin_token`` (file mode 0600; the data
folder is never in git). ``xiaozhi-hub token`` prints it, ``xiaozhi-hub token --rotate`` replaces
it. The hub re-reads the file when it changes (one ``stat`` per API request), so a rotation takes
effect for new requests without a restart; event streams already open stay open until they
reconnect. The token is never logged and never shown on the status page or in API output.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import os
import secrets
import sys
from pathlib import Path

from ..auth import strip_bearer
from ..settings import Settings, add_common_flags

TOKEN_FILE = "admin_token"
MIN_LENGTH = 24


class AdminToken:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._value: str | None = None
        self._stamp: tuple[int, int, int] | None = None

    @classmethod
    def in_data_dir(cls, data_dir: Path) -> "AdminToken":
        return cls(data_dir / TOKEN_FILE)

    # -- the file ------------------------------------------------------------------------------------
    def _write(self, value: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        # Created with mode 0600 from the first byte (no window where it is readable by others).
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        tmp.replace(self.path)

    def _read(self) -> str | None:
        try:
            value = self.path.read_text().strip()
        except FileNotFoundError:
            return None
        return value if len(value) >= MIN_LENGTH else None

    def ensure(self) -> str:
        """The token, created if the file is missing (or holds something too short to be one)."""
        value = self._read()
        if value is None:
            value = secrets.token_urlsafe(32)
            self._write(value)
        elif self.path.stat().st_mode & 0o077:
            self.path.chmod(0o600)        # tighten a copy restored with looser permissions
        self._refresh(force=True)
        return value

    def set(self, value: str) -> None:
        """Use ``value`` as the token (e.g. one an installer generated); it must be long enough."""
        value = value.strip()
        if len(value) < MIN_LENGTH or not value.isprintable() or " " in value:
            raise ValueError(f"an admin token must be at least {MIN_LENGTH} printable characters without spaces")
        self._write(value)
        self._refresh(force=True)

    def rotate(self) -> str:
        """Replace the token; the old one stops working for new requests at once."""
        value = secrets.token_urlsafe(32)
        self._write(value)
        self._refresh(force=True)
        return value

    def _refresh(self, force: bool = False) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._value, self._stamp = None, None
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if force or stamp != self._stamp:
            self._value, self._stamp = self._read(), stamp

    def current(self) -> str | None:
        """The token now in the file (re-read only when the file changed)."""
        self._refresh()
        return self._value

    # -- checking a request ----------------------------------------------------------------------------
    def allows(self, authorization: str | None) -> bool:
        """Whether an ``Authorization`` header value carries the admin token (constant-time compare)."""
        given = strip_bearer(authorization)
        expected = self.current()
        if given is None or expected is None:
            return False
        return hmac.compare_digest(given.encode(), expected.encode())


# ---------------------------------------------------------------------------- xiaozhi-hub token

def _token_command(args: argparse.Namespace, settings: Settings) -> int:
    token = AdminToken.in_data_dir(settings.data_path)
    if args.rotate:
        print(token.rotate())
        print("the old token no longer works; update Home Assistant (reconfigure the xiaozhi entry)",
              file=sys.stderr)
    else:
        print(token.ensure())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "token", help="print the admin token the HTTP API (/api/) needs; --rotate makes a new one",
        description="Print the hub's admin token (created in the data folder on first use). Give it to "
                    "Home Assistant and other API clients as 'Authorization: Bearer <token>'.")
    add_common_flags(p, suppress=True)
    p.add_argument("--rotate", action="store_true",
                   help="replace the token (the running hub accepts only the new one from the next request)")
    p.set_defaults(func=_token_command)
