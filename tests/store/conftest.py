import pytest

import epochal


@pytest.fixture(params=["sqlite", "memory"])
def location(request, tmp_path):
    """A fresh store location of each backend: the same tests prove that both implement the interface."""
    return tmp_path / "store" if request.param == "sqlite" else f"memory://{tmp_path}"


@pytest.fixture
def store(location):
    """An open store of each backend."""
    with epochal.Store(location) as store:
        yield store
