"""Persistent state: one SQLite database (WAL) in the data folder (``db``), the device records
(``devices``, ``activation``, the hub's cached ``device_store``) and the firmware store (``firmware``,
``firmware_files``). Memory and timers keep their tables next to their code (memory/, tools/timers.py)."""

from .db import Database

__all__ = ["Database"]
