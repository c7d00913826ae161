"""Fixtures for the store tests: a real SQLite database in tmp_path, opened as the CLI opens it."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

from xiaozhi_hub.store.db import Database
from xiaozhi_hub.store.firmware import FirmwareStore

from .images import image_writer

BOARD = "bread-compact-wifi"
DEVICE_ID = "a1:b2:c3:d4:e5:f6"


@pytest.fixture
def sync_db(tmp_path: Path) -> Iterator[Database]:
    db = Database(tmp_path / "hub.db").open_sync()
    yield db
    db.conn.close()


@pytest.fixture
def store(tmp_path: Path, sync_db: Database) -> FirmwareStore:
    return FirmwareStore(tmp_path / "firmware", sync_db)


@pytest.fixture
def image_file(tmp_path: Path) -> Callable[..., Path]:
    return image_writer(tmp_path)
