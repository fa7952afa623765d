"""Fixtures of the central tests; a test module uses them with
``pytest_plugins = ("tests.central_fixtures",)`` (helpers live in tests/central_support.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kiosk.central import Ingest, Store, open_store
from tests.broker import Broker
from tests.central_support import fresh_database, ingests


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    opened = open_store(db_url)
    yield opened
    opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return str(tmp_path / "central.db")


@pytest.fixture
def connect() -> Iterator[Callable[[str], Store]]:
    """open_store, closing every store at the end of the test."""
    opened: list[Store] = []

    def open_one(url: str) -> Store:
        opened.append(open_store(url))
        return opened[-1]

    yield open_one
    for one in opened:
        one.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, or a PostgreSQL schema dropped afterwards."""
    yield from fresh_database(request.param, tmp_path)


@pytest.fixture
def central(broker: Broker) -> Iterator[Callable[..., Ingest]]:
    """Start ingest consumers on the test broker; all are stopped at the end."""
    yield from ingests(broker)
