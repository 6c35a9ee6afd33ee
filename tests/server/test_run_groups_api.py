"""GET /api/run-groups: runs in groups of equal config values, each with its count and each metric's mean
and standard deviation, from either backend."""

import statistics

import pytest
from fastapi.testclient import TestClient

import epochal
from epochal.server import create_app

LRS = (0.01, 0.1)
SEEDS = (0, 1, 2)


@pytest.fixture
def store(either_store):
    """Every test of this module on SQLite and on PostgreSQL."""
    return either_store


def best(lr: float, seed: int) -> float:
    return lr * 10 + seed * 0.25


@pytest.fixture(params=["sqlite", "memory"])
def client(request, tmp_path):
    """2 learning rates × 3 seeds with known losses, and one run of another optimiser with no loss, on each backend."""
    location = tmp_path / "store" if request.param == "sqlite" else f"memory://{tmp_path}"
    with epochal.Store(location) as store:
        for lr in LRS:
            for seed in SEEDS:
                with epochal.start("sweep", store=store, config={"lr": lr, "seed": seed, "optim": {"name": "adam"}}) as run:
                    run.log({"valid/loss": best(lr, seed) + 1})
                    run.step()
                    run.log({"valid/loss": best(lr, seed)})
        with epochal.start("sweep", store=store, config={"lr": 0.1, "seed": 0, "optim": {"name": "sgd"}}):
            pass
        with TestClient(create_app(store, static_dir=None)) as c:
            yield c


def test_groups_carry_counts_and_each_metrics_mean_and_std(client):
    body = client.get("/api/run-groups", params={"group_by": ["lr"], "metric": ["valid/loss:best", "valid/loss:last"]}).json()
    assert body["group_by"] == ["lr"]
    assert body["metrics"] == ["valid/loss:best", "valid/loss:last"]
    assert [(g["values"], g["count"]) for g in body["groups"]] == [([0.1], 4), ([0.01], 3)]
    for lr, group in zip((0.1, 0.01), body["groups"]):
        values = [best(lr, seed) for seed in SEEDS]
        stats = group["stats"]["valid/loss:best"]
        assert stats["count"] == 3  # the run without the key has no value
        assert stats["mean"] == pytest.approx(statistics.mean(values))
        assert stats["std"] == pytest.approx(statistics.stdev(values))
        assert group["stats"]["valid/loss:last"]["mean"] == pytest.approx(statistics.mean(values))


def test_groups_by_several_keys_follow_the_runs_filters(client):
    body = client.get("/api/run-groups", params={"group_by": ["lr", "optim.name"], "where": ["seed=0"],
                                                 "metric": "valid/loss:best"}).json()
    assert sorted((g["values"], g["count"]) for g in body["groups"]) == [
        ([0.01, "adam"], 1), ([0.1, "adam"], 1), ([0.1, "sgd"], 1)]
    sgd = next(g for g in body["groups"] if g["values"][1] == "sgd")
    assert sgd["stats"]["valid/loss:best"] == {"count": 0, "mean": None, "std": None}
    one = next(g for g in body["groups"] if g["values"] == [0.01, "adam"])
    assert one["stats"]["valid/loss:best"]["std"] == 0


def test_an_unknown_group_key_is_refused_naming_the_config_keys(client):
    response = client.get("/api/run-groups", params={"group_by": "momentum"})
    assert response.status_code == 422
    text = response.text
    assert "momentum" in text and "lr" in text and "optim.name" in text and "seed" in text
    assert client.get("/api/run-groups").status_code == 422
