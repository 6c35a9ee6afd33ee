"""The runs resource: listing, filtering, details and the changes a user may make."""

import pytest

import epochal
from epochal.store.records import RunUpdate, WriteBatch


@pytest.fixture
def store(either_store):
    """Every test of this module on SQLite and on PostgreSQL."""
    return either_store


def test_runs_lists_every_run_newest_first_with_chosen_metrics(client, ids):
    body = client.get("/api/runs", params={"metric": ["valid/loss", "train/loss"]}).json()
    assert [r["name"] for r in body["runs"]] == ["gamma", "beta", "alpha"]
    alpha = body["runs"][2]
    assert alpha["status"] == "finished" and alpha["project"] == "mnist" and alpha["tags"] == ["baseline"]
    assert alpha["config"] == {"optim.lr": 0.1, "optim.name": "sgd", "seed": 1}
    assert alpha["metrics"]["valid/loss"]["last"] == pytest.approx(0.6)
    assert alpha["metrics"]["train/loss"]["best"] == pytest.approx(1 / 300 + 0.1)
    assert alpha["metrics"]["train/loss"]["mode"] == "min" and alpha["metrics"]["train/loss"]["count"] == 300
    assert set(body["metric_keys"]) == {"train/loss", "train/accuracy", "valid/loss", "valid/accuracy", "odd"}
    assert body["config_keys"] == ["optim.lr", "optim.name", "seed"]


def test_each_listed_run_carries_its_main_metrics(client, ids):
    body = client.get("/api/runs").json()
    main = {r["name"]: r["main_metrics"] for r in body["runs"]}
    # epochal.keys.main_metrics: valid/ before train/ before the rest, losses before accuracies.
    assert main["alpha"] == ["valid/loss", "valid/accuracy", "train/loss"]
    assert main["beta"] == main["gamma"] == ["valid/loss", "valid/accuracy", "train/loss"]
    assert body["main_metrics"] == ["valid/loss", "valid/accuracy", "train/loss"]  # what `epochal ls` shows
    assert client.get(f"/api/runs/{ids['alpha']}").json()["main_metrics"] == main["alpha"]


def test_main_metrics_follow_the_run_keys(client, store):
    run = epochal.start("other", "odd-keys", store=store)
    run.log({"epoch_time": 1.0, "lr": 0.1, "test/acc": 0.5})
    run.finish()
    body = client.get("/api/runs", params={"project": "other"}).json()
    assert body["runs"][0]["main_metrics"] == ["test/acc", "epoch_time", "lr"]
    assert body["main_metrics"] == ["test/acc", "epoch_time", "lr"]


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"project": "mnist"}, ["beta", "alpha"]),
        ({"tag": "wide"}, ["gamma"]),
        ({"q": "BET"}, ["beta"]),
        ({"q": "baseline"}, ["beta", "alpha"]),
        ({"status": "running"}, []),
    ],
)
def test_runs_filters(client, params, names):
    assert [r["name"] for r in client.get("/api/runs", params=params).json()["runs"]] == names


def test_a_filtered_list_offers_only_its_runs_keys(client, ids):
    body = client.get("/api/runs", params={"project": "cifar"}).json()
    assert "odd" not in body["metric_keys"] and "valid/loss" in body["metric_keys"]


def test_run_detail_has_record_summary_and_checkpoints(client, ids):
    body = client.get(f"/api/runs/{ids['alpha']}").json()
    assert body["name"] == "alpha" and body["config_tree"] == {"optim": {"lr": 0.1, "name": "sgd"}, "seed": 1}
    summary = {row["key"]: row for row in body["summary"]}
    assert summary["odd"]["count"] == 3 and summary["odd"]["last"] == 1.0
    assert summary["train/accuracy"]["mode"] == "max"
    assert summary["valid/loss"]["split"] == "valid" and summary["odd"]["split"] is None
    [checkpoint] = body["checkpoints"]
    assert checkpoint["kind"] == "resume" and checkpoint["size"] > 0
    assert checkpoint["url"].startswith(f"/api/runs/{ids['alpha']}/files/")
    assert body["host"] and body["python"] and body["command"]


def test_run_by_name_as_the_cli_accepts(client, ids):
    assert client.get("/api/runs/beta").json()["id"] == ids["beta"]


def test_unknown_run_is_404_with_a_message(client):
    response = client.get("/api/runs/nosuchrun")
    assert response.status_code == 404
    assert "nosuchrun" in response.json()["detail"]


def test_tags_and_notes_are_changed_by_a_same_origin_request(client, ids, store):
    same_origin = {"Origin": "http://testserver"}
    response = client.patch(f"/api/runs/{ids['beta']}", json={"tags": ["keep", "keep", " best "], "notes": "lr too low"},
                            headers=same_origin)
    assert response.status_code == 200, response.text
    assert response.json()["tags"] == ["keep", "best"] and response.json()["notes"] == "lr too low"
    record = store.run(ids["beta"])
    assert record.tags == ("keep", "best") and record.description == "lr too low"
    assert [r.name for r in store.runs(tag="keep")] == ["beta"]


def test_a_bad_tag_is_422_and_changes_nothing(client, ids, store):
    response = client.patch(f"/api/runs/{ids['beta']}", json={"tags": ["  "]}, headers={"Origin": "http://testserver"})
    assert response.status_code == 422 and "tag" in response.json()["detail"]
    assert store.run(ids["beta"]).tags == ("baseline",)


def test_unknown_fields_in_a_change_are_422(client, ids):
    response = client.patch(f"/api/runs/{ids['beta']}", json={"name": "x"}, headers={"Origin": "http://testserver"})
    assert response.status_code == 422 and "name" in response.json()["detail"]


def test_delete_removes_the_run_and_its_files_from_a_store_that_keeps_them(client, ids, store):
    folder = store.run(ids["alpha"]).path
    response = client.delete(f"/api/runs/{ids['alpha']}", headers={"Origin": "http://testserver"})
    assert response.status_code == 200 and response.json() == {"deleted": ids["alpha"]}
    assert [r.name for r in store.runs()] == ["gamma", "beta"]
    import os

    # A team store keeps records only: the files stay where they are (the training machine, a bucket).
    assert os.path.exists(folder) is not store.keeps_files
    assert client.get(f"/api/runs/{ids['alpha']}").status_code == 404


def test_a_running_run_cannot_be_deleted(client, store):
    run = epochal.start("mnist", "live", store=store)
    try:
        run.log({"x": 1.0})
        run.flush()
        response = client.delete(f"/api/runs/{run.id}", headers={"Origin": "http://testserver"})
        assert response.status_code == 409 and "still running" in response.json()["detail"]
        assert client.get("/api/runs", params={"status": "running"}).json()["runs"][0]["name"] == "live"
    finally:
        run.finish()


def test_store_info(client):
    body = client.get("/api/store").json()
    assert body["runs"] == 3 and body["projects"] == ["cifar", "mnist"] and body["tags"] == ["baseline", "wide"]
    assert body["read_only"] is False


def test_a_body_that_is_not_json_is_422(client, ids):
    response = client.patch(f"/api/runs/{ids['beta']}", content=b"{notes:", headers={
        "Origin": "http://testserver", "Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"]


def test_allow_lists_every_method_of_a_path(client, ids):
    response = client.put(f"/api/runs/{ids['beta']}")
    assert response.status_code == 405
    assert response.headers["allow"] == "DELETE, GET, PATCH"


def test_a_single_valued_parameter_given_twice_is_422(client):
    response = client.get("/api/runs", params=[("tag", "baseline"), ("tag", "wide")])
    assert response.status_code == 422 and "'tag'" in response.json()["detail"]
    assert client.get("/api/runs", params=[("metric", "odd"), ("metric", "valid/loss")]).status_code == 200


def test_a_ddp_run_shows_its_world_size_and_each_ranks_process(client, ids, store):
    ranks = (("host-a", 123), ("host-a", 124))
    store.write(WriteBatch(run_updates=(RunUpdate(ids["beta"], ranks=ranks),)))
    body = client.get(f"/api/runs/{ids['beta']}").json()
    assert body["world_size"] == 2
    assert body["ranks"] == [{"rank": 0, "host": "host-a", "pid": 123}, {"rank": 1, "host": "host-a", "pid": 124}]
    alone = client.get(f"/api/runs/{ids['alpha']}").json()
    assert alone["world_size"] == 1 and alone["ranks"] == []
    listed = {r["name"]: r["world_size"] for r in client.get("/api/runs").json()["runs"]}
    assert listed == {"alpha": 1, "beta": 2, "gamma": 1}


@pytest.fixture(scope="module")
def sweep_client(tmp_path_factory):
    """A store of 250 runs of a sweep (lr, seed) with a validation loss each, served (the last test adds one)."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    from fastapi.testclient import TestClient

    from epochal.server import create_app

    with epochal.Store(tmp_path / "sweep") as store:
        for i in range(250):
            with epochal.start("sweep", f"t{i:03d}", config={"lr": 10 ** -(1 + i % 4), "seed": i}, store=store,
                               system_metrics=False) as run:
                run.log({"valid/loss": 1 + (i * 37 % 250) / 250})
        with TestClient(create_app(store, static_dir=None)) as client:
            yield client, store


def test_runs_come_a_page_at_a_time_with_the_total(sweep_client):
    client, _ = sweep_client
    first = client.get("/api/runs", params={"limit": 100}).json()
    assert first["total"] == 250 and len(first["runs"]) == 100 and first["runs"][0]["name"] == "t249"
    last = client.get("/api/runs", params={"limit": 100, "offset": 200}).json()
    assert [r["name"] for r in last["runs"]][-1] == "t000" and len(last["runs"]) == 50
    past = client.get("/api/runs", params={"limit": 100, "offset": 1000}).json()
    assert past["runs"] == [] and past["total"] == 250
    assert client.get("/api/runs").json()["limit"] == 100  # a page by default, never the whole store


def test_runs_sort_by_a_metric_or_a_config_value_and_filter_by_conditions(sweep_client):
    client, _ = sweep_client
    body = client.get("/api/runs", params={"sort": "valid/loss:best", "order": "asc", "limit": 3,
                                           "metric": "valid/loss"}).json()
    losses = [r["metrics"]["valid/loss"]["best"] for r in body["runs"]]
    assert losses == sorted(losses) and losses[0] == 1.0
    body = client.get("/api/runs", params={"where": ["lr<0.005", "valid/loss:last>=1.9"], "sort": "lr",
                                           "order": "asc", "limit": 500}).json()
    assert body["total"] == len(body["runs"]) > 0
    assert all(r["config"]["lr"] < 0.005 for r in body["runs"])
    assert [r["config"]["lr"] for r in body["runs"]] == sorted(r["config"]["lr"] for r in body["runs"])
    ids = client.get("/api/run-ids", params={"where": ["lr<0.005", "valid/loss:last>=1.9"]}).json()
    assert ids["total"] == body["total"] and set(ids["ids"]) == {r["id"] for r in body["runs"]}


@pytest.mark.parametrize("params, named", [
    ({"sort": "lrr"}, "no run has the config key 'lrr'; the config keys are: lr, seed"),
    ({"sort": "valid/los:best"}, "no run has the logged key 'valid/los'"),
    ({"where": "lr<<1"}, "a condition is a column, an operator"),
    ({"where": "valid/loss:best<high"}, "not a number"),
    ({"sort": "valid/loss:median"}, "':last' or ':best'"),
    ({"order": "up"}, "order"),
    ({"limit": 0}, "limit"),
    ({"limit": 5000}, "limit"),
])
def test_an_unknown_column_or_a_malformed_condition_is_422_naming_what_is_accepted(sweep_client, params, named):
    client, _ = sweep_client
    answer = client.get("/api/runs", params=params)
    assert answer.status_code == 422 and named in answer.text


def test_a_list_as_of_its_first_load_is_not_shifted_by_new_runs(sweep_client):
    client, store = sweep_client
    first = client.get("/api/runs", params={"limit": 10}).json()
    as_of = first["runs"][0]["started"]
    with epochal.start("sweep", "newcomer", store=store, system_metrics=False):
        pass
    again = client.get("/api/runs", params={"limit": 10, "as_of": as_of}).json()
    assert [r["id"] for r in again["runs"]] == [r["id"] for r in first["runs"]]
    assert again["total"] == 250 and again["newer"] == 1
    assert client.get("/api/runs", params={"limit": 10}).json()["runs"][0]["name"] == "newcomer"
