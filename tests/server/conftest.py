import pytest
from fastapi.testclient import TestClient

from epochal.server import create_app
from sample_runs import make_runs


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
