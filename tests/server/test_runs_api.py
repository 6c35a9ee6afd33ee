"""The runs resource: listing, filtering, details and the changes a user may make."""

import pytest

import epochal
from epochal.store.records import RunUpdate, WriteBatch


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


def test_delete_removes_the_run_and_its_files(client, ids, store):
    folder = store.run(ids["alpha"]).path
    response = client.delete(f"/api/runs/{ids['alpha']}", headers={"Origin": "http://testserver"})
    assert response.status_code == 200 and response.json() == {"deleted": ids["alpha"]}
    assert [r.name for r in store.runs()] == ["gamma", "beta"]
    import os

    assert not os.path.exists(folder)
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
