"""Persistent state: one SQLite database (WAL) in the data folder."""

from .db import Database

__all__ = ["Database"]
