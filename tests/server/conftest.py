import pytest
from fastapi.testclient import TestClient

import epochal
from epochal.server import create_app
from sample_runs import make_runs


@pytest.fixture(params=["sqlite", "postgres"])
def either_store(request, tmp_path):
    """An open store on SQLite and on a real PostgreSQL server: the API's modules that override ``store``
    with it run every test on both. A PostgreSQL store's runs reach it through the spool."""
    location = request.getfixturevalue("postgres_url") if request.param == "postgres" else tmp_path / "store"
    with epochal.Store(location) as store:
        yield store


@pytest.fixture
def filled_store(store):
    return store, make_runs(store)


@pytest.fixture
def client(filled_store):
    store, _ = filled_store
    with TestClient(create_app(store, static_dir=None)) as c:
        yield c


@pytest.fixture
def ids(filled_store):
    return filled_store[1]
