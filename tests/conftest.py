import pytest

import epochal


@pytest.fixture(autouse=True)
def _isolated_default_store(tmp_path, monkeypatch):
    """No test writes to ./epochal-runs: the default store is a fresh directory."""
    monkeypatch.setenv("EPOCHAL_DIR", str(tmp_path / "default-store"))


@pytest.fixture
def store_dir(tmp_path):
    return tmp_path / "store"


@pytest.fixture
def store(tmp_path):
    """An open store in a fresh directory."""
    with epochal.Store(tmp_path / "store") as store:
        yield store
