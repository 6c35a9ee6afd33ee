import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
from postgres_server import PostgresMissing, PostgresServer

import epochal


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path, monkeypatch):
    """No test writes to ./epochal-runs: the default store is a fresh directory."""
    monkeypatch.setenv("EPOCHAL_DIR", str(tmp_path / "default-store"))
    monkeypatch.setenv("EPOCHAL_SPOOL", str(tmp_path / "spool"))  # a team store's runs go through it


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def store(tmp_path):
    """An open store in a fresh directory."""
    with epochal.Store(tmp_path / "store") as store:
        yield store


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory):
    """One PostgreSQL server of our own for the whole session, on a free loopback port.

    Skips when PostgreSQL is not installed, unless EPOCHAL_REQUIRE_SERVERS=1 (as `make test`
    sets), where it fails: CI must never skip these tests silently.
    """
    if os.geteuid() == 0:
        # pytest's temp folders are private to root (0700), and the server runs as the postgres
        # user, who must reach its folder: a folder of its own in the system temp folder instead.
        folder = Path(tempfile.mkdtemp(prefix="epochal-postgres-"))
    else:
        folder = tmp_path_factory.mktemp("postgres")
    try:
        server = PostgresServer(folder)
    except PostgresMissing as missing:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("EPOCHAL_REQUIRE_SERVERS") == "1":
            pytest.fail(str(missing))
        pytest.skip(str(missing))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_url(postgres_server):
    """The URL of a fresh, empty database on the session's server, dropped afterwards."""
    # An earlier test may have stopped the server (crash tests).
    postgres_server.start()
    name = f"test_{uuid.uuid4().hex[:12]}"
    postgres_server.create_database(name)
    yield postgres_server.url(name)
    postgres_server.start()
    postgres_server.drop_database(name)
