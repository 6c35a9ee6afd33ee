import math
import os

import numpy as np
import pytest
import torch

import epochal


def test_logged_points_land_in_the_store_with_step_epoch_and_time(store_dir):
    with epochal.start(project="mnist", name="baseline", config={"lr": 1e-3}, tags=["cnn"], store=store_dir) as run:
        for epoch in range(3):
            for batch in range(4):
                run.log({"train/loss": torch.tensor(1.0 / (batch + 1)), "train/acc": np.float32(0.25 * batch)})
                run.step()
            run.log({"valid/acc": 0.5 + epoch / 10}, epoch=epoch)
            run.epoch()
    store = epochal.Store(store_dir)
    record = store.run("baseline")
    assert record.status == "finished" and record.project == "mnist" and record.tags == ("cnn",)
    assert record.steps == 12 and record.epochs == 3
    assert store.keys(record) == ["train/acc", "train/loss", "valid/acc"]
    loss = store.history(record, "train/loss")
    assert loss.steps.tolist() == list(range(12))
    assert loss.epochs.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert loss.values[:4].tolist() == [1.0, 0.5, pytest.approx(1 / 3), 0.25]
    valid = store.history(record, "valid/acc")
    assert valid.steps.tolist() == [4, 8, 12] and valid.epochs.tolist() == [0, 1, 2]
    assert valid.values.tolist() == [0.5, 0.6, 0.7]
    assert np.all(valid.times >= record.started) and np.all(valid.times <= record.ended)


def test_record_describes_the_process(store_dir):
    run = epochal.start(project="p", store=store_dir, description="first try")
    record = epochal.Store(store_dir).run(run.id)
    assert record.pid == os.getpid() and record.host and record.command
    assert record.python.count(".") == 2 and record.torch == torch.__version__
    assert record.status == "running" and record.description == "first try"
    assert record.name.endswith("-1")  # made-up name numbered within the project
    run.finish()


def test_step_and_epoch_arguments_override_counters(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0}, step=100, epoch=7)
        run.log({"a": 2.0})
        assert run.step(5) == 5 and run.epoch() == 1
    h = epochal.Store(store_dir).history(run.id, "a")
    assert h.steps.tolist() == [0, 100] and h.epochs.tolist() == [0, 7] and h.values.tolist() == [2.0, 1.0]


def test_non_finite_values_are_kept(store_dir):
    with epochal.start(store=store_dir) as run:
        for value in (1.0, math.nan, math.inf, -math.inf, np.float64("nan"), torch.tensor(float("inf"))):
            run.log({"loss": value})
            run.step()
    values = epochal.Store(store_dir).history(run.id, "loss").values
    assert values[0] == 1.0 and np.isnan(values[1]) and values[2] == np.inf and values[3] == -np.inf
    assert np.isnan(values[4]) and values[5] == np.inf
    summary = epochal.Store(store_dir).summary(run.id)["loss"]
    assert summary.min == -math.inf and summary.max == math.inf and summary.count == 6


@pytest.mark.parametrize(
    "value, type_name",
    [("0.5", "str"), (None, "NoneType"), (torch.ones(3), "shape (3,)"), (np.ones((2, 2)), "shape (2, 2)"),
     (1 + 2j, "complex"), ([1.0], "list")],
)
def test_bad_values_raise_type_error_naming_key_and_type(store_dir, value, type_name):
    with epochal.start(store=store_dir) as run:
        run.log({"ok": 1.0})
        with pytest.raises(TypeError, match="'bad/key'") as info:
            run.log({"fine": 2.0, "bad/key": value})
        assert type_name in str(info.value)
    store = epochal.Store(store_dir)
    assert store.keys(run.id) == ["ok"]  # nothing of the failed call was recorded


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_bad_keys_raise_value_error(store_dir, key):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(ValueError, match="1 to 255 characters"):
            run.log({key: 1.0})


def test_an_int_too_large_for_a_float_is_refused_on_the_callers_thread(store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(ValueError, match="'big'.*too large"):
            run.log({"big": 10**400})
        run.log({"big": 10**300})
    assert epochal.Store(store_dir).history(run.id, "big").values.tolist() == [1e300]


def test_non_string_key_raises_type_error(store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(TypeError, match="keys are strings"):
            run.log({3: 1.0})


def test_accepted_scalar_types(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"int": 3, "bool": True, "np_int": np.int64(4), "np_f16": np.float16(0.5), "np_0d": np.array(2.5),
                 "t_1elem": torch.tensor([1.5]), "t_bf16": torch.tensor(0.25, dtype=torch.bfloat16),
                 "t_grad": torch.tensor(2.0, requires_grad=True) * 2})
    store = epochal.Store(store_dir)
    last = {k: s.last for k, s in store.summary(run.id).items()}
    assert last == {"int": 3.0, "bool": 1.0, "np_int": 4.0, "np_f16": 0.5, "np_0d": 2.5, "t_1elem": 1.5,
                    "t_bf16": 0.25, "t_grad": 4.0}


def test_logged_dict_is_copied(store_dir):
    with epochal.start(store=store_dir) as run:
        metrics = {"a": 1.0}
        run.log(metrics)
        metrics["a"] = 99.0
    assert epochal.Store(store_dir).history(run.id, "a").values.tolist() == [1.0]


def test_summary_gives_last_and_best_by_direction(store_dir):
    with epochal.start(store=store_dir) as run:
        for loss, acc in [(0.9, 0.1), (0.2, 0.8), (0.5, 0.6)]:
            run.log({"valid/loss": loss, "valid/acc": acc})
            run.step()
        summary = run.summary
    assert summary["valid/loss"].last == 0.5 and summary["valid/loss"].best == 0.2
    assert summary["valid/acc"].last == 0.6 and summary["valid/acc"].best == 0.8
    assert summary["valid/acc"].last_step == 2 and summary["valid/acc"].count == 3


def test_exception_marks_run_failed_and_keeps_points(store_dir):
    with pytest.raises(RuntimeError):
        with epochal.start(store=store_dir) as run:
            run.log({"a": 1.0})
            raise RuntimeError("boom")
    store = epochal.Store(store_dir)
    assert store.run(run.id).status == "failed"
    assert store.history(run.id, "a").values.tolist() == [1.0]


def test_keyboard_interrupt_marks_run_interrupted(store_dir):
    with pytest.raises(KeyboardInterrupt):
        with epochal.start(store=store_dir) as run:
            raise KeyboardInterrupt
    assert epochal.Store(store_dir).run(run.id).status == "interrupted"


def test_finished_run_refuses_more_points(store_dir):
    run = epochal.start(store=store_dir)
    run.finish()
    run.finish()  # a second finish is harmless
    with pytest.raises(epochal.RunStateError, match="resume it"):
        run.log({"a": 1.0})


def test_flush_happens_by_size_before_the_interval(store_dir):
    run = epochal.start(store=store_dir, flush_interval=60, flush_points=100)
    for i in range(150):
        run.log({"a": float(i)})
    store = epochal.Store(store_dir)
    import time

    deadline = time.time() + 10
    while time.time() < deadline and "a" not in store.keys(run.id):
        time.sleep(0.05)
    assert len(store.history(run.id, "a")) >= 100
    run.finish()


def test_flush_happens_by_time(store_dir):
    run = epochal.start(store=store_dir, flush_interval=0.1)
    run.log({"a": 1.0})
    store = epochal.Store(store_dir)
    import time

    deadline = time.time() + 10
    while time.time() < deadline and "a" not in store.keys(run.id):
        time.sleep(0.02)
    assert store.history(run.id, "a").values.tolist() == [1.0]
    run.finish()


def test_store_from_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("EPOCHAL_DIR", str(tmp_path / "from-env"))
    with epochal.start(project="env") as run:
        run.log({"a": 1.0})
    assert (tmp_path / "from-env" / "epochal.db").is_file()
    assert epochal.Store().run(run.id).project == "env"


def test_config_is_kept_nested_and_queryable_by_dotted_key(store_dir):
    from pathlib import Path

    config = {"optim": {"name": "adam", "lr": 0.001, "betas": (0.9, 0.99)}, "data": Path("/data"), "seed": 1}
    epochal.start(project="p", name="a", config=config, store=store_dir).finish()
    epochal.start(project="p", name="b", config={"optim": {"name": "sgd", "lr": 0.1}}, store=store_dir).finish()
    store = epochal.Store(store_dir)
    record = store.run("a")
    assert record.config["optim.lr"] == 0.001 and record.config["optim"]["name"] == "adam"
    assert record.config["optim.betas"] == [0.9, 0.99] and record.config["data"] == "/data"
    assert [r.name for r in store.runs(config={"optim.name": "sgd"})] == ["b"]
    assert [r.name for r in store.runs(config={"optim.lr": 1e-3})] == ["a"]
    assert [r.name for r in store.runs(project="p", tag=None)] == ["b", "a"]


def test_runs_are_named_by_id_prefix_name_or_record(store_dir):
    first = epochal.start(name="same", store=store_dir)
    first.finish()
    second = epochal.start(name="same", store=store_dir)
    second.finish()
    store = epochal.Store(store_dir)
    assert store.run("same").id == second.id  # the newest of that name
    assert store.run(first.id).id == first.id
    assert store.run(first.id[:8]).id == first.id
    assert store.run(store.run(first.id)).id == first.id
    assert store.run(first).id == first.id
    with pytest.raises(epochal.RunNotFoundError, match="'nope'"):
        store.run("nope")


def test_unknown_key_is_a_clear_error(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0})
    with pytest.raises(epochal.SeriesNotFoundError, match="'b'.*its keys: a"):
        epochal.Store(store_dir).history(run.id, "b")


def test_store_that_cannot_be_created_fails_at_start(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(epochal.StoreError, match="a-file"):
        epochal.start(store=blocker / "store")


def test_bad_arguments_are_refused(store_dir):
    with pytest.raises(ValueError, match="project"):
        epochal.start(project="", store=store_dir)
    with pytest.raises(ValueError, match="flush interval"):
        epochal.start(store=store_dir, flush_interval=0)
    with pytest.raises(ValueError, match="flush size"):
        epochal.start(store=store_dir, flush_points=0)
    assert epochal.Store(store_dir).runs() == []  # refused before anything was recorded
    with epochal.start(store=store_dir) as run:
        with pytest.raises(TypeError, match="step must be an int"):
            run.log({"a": 1.0}, step=1.5)
        with pytest.raises(ValueError, match=r"step must be from 0 to 2\*\*63 - 1"):
            run.log({"a": 1.0}, step=-1)


def test_unsupported_store_uri_is_refused(tmp_path):
    with pytest.raises(epochal.StoreError, match="postgresql"):
        epochal.Store("postgresql://localhost/runs")
    assert epochal.Store(f"sqlite://{tmp_path / 'uri-store'}").path == tmp_path / "uri-store"


def _script(store_dir, body):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import epochal
        run = epochal.start(name="script", store={str(store_dir)!r})
        run.log({{"a": 1.0}})
    """) + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(
    "body, status",
    [("", "finished"), ("raise RuntimeError('boom')", "failed"), ("raise KeyboardInterrupt", "interrupted")],
)
def test_a_run_left_open_is_closed_when_the_interpreter_exits(store_dir, body, status):
    _script(store_dir, body)
    store = epochal.Store(store_dir)
    assert store.run("script").status == status
    assert store.history("script", "a").values.tolist() == [1.0]


def test_the_recorded_command_is_as_typed(tmp_path):
    import subprocess
    import sys

    code = "import epochal; r = epochal.start('p', 'n', store=%r); r.finish(); print(r.id)" % str(tmp_path / "s")
    script = tmp_path / "train.py"
    script.write_text(code)
    subprocess.run([sys.executable, str(script), "--lr", "0.1"], check=True, capture_output=True)
    with epochal.Store(tmp_path / "s") as store:
        [record] = store.runs()
    assert record.command == f"{os.path.basename(sys.executable)} {script} --lr 0.1"


ODD_TEXT = ["loss/\ud800", "\udcff", "a\ud83d\ude00b", "x\x00y"]  # lone surrogates, a split pair, a NUL


@pytest.mark.parametrize("key", ODD_TEXT)
def test_a_key_the_store_cannot_hold_is_refused_by_log_and_the_run_goes_on(store_dir, key):
    with epochal.start(store=store_dir, flush_interval=0.05) as run:
        run.log({"loss": 1.0})
        with pytest.raises(ValueError, match="run.log: the key"):
            run.log({"loss": 2.0, key: 1.0})
        run.step()
        run.log({"loss": 3.0})
        assert run.flush(timeout=10)
    assert epochal.Store(store_dir).history(run.id, "loss").values.tolist() == [1.0, 3.0]


@pytest.mark.parametrize("text", ODD_TEXT)
@pytest.mark.parametrize("where", ["project", "name", "tag", "config key", "config value", "description"])
def test_text_the_store_cannot_hold_is_refused_by_start_with_one_clear_error(store_dir, text, where):
    if "\x00" in text and where.startswith("config"):
        pytest.skip("a config is JSON, which holds a NUL as \\u0000")
    arguments = {
        "project": {"project": text}, "name": {"name": text}, "tag": {"tags": ["ok", text]},
        "config key": {"config": {"data": {text: 1}}}, "config value": {"config": {"path": text}},
        "description": {"description": text},
    }[where]
    with pytest.raises(ValueError, match="not valid Unicode|NUL"):
        epochal.start(store=store_dir, **arguments)
    assert epochal.Store(store_dir).runs() == []


@pytest.mark.parametrize("where", [{"step": 2**63}, {"epoch": 2**63}, {"step": 10**30}, {"epoch": -1}])
def test_a_step_or_epoch_the_store_cannot_hold_is_refused_and_the_other_points_are_kept(store_dir, where):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0}, step=2**63 - 1)
        with pytest.raises(ValueError, match=r"from 0 to 2\*\*63 - 1"):
            run.log({"a": 2.0, "b": 2.0}, **where)
        run.log({"b": 3.0})
        assert run.flush(timeout=10)
    store = epochal.Store(store_dir)
    assert store.history(run.id, "a").steps.tolist() == [2**63 - 1]
    assert store.history(run.id, "b").values.tolist() == [3.0]
    assert store.run(run.id).status == "finished"


def test_the_counters_cannot_pass_what_the_store_holds(store_dir):
    with epochal.start(store=store_dir) as run:
        run.step(2**63 - 1)
        with pytest.raises(ValueError, match="past the largest"):
            run.step()
        with pytest.raises(ValueError, match="past the largest"):
            run.epoch(2**63)
        assert (run.steps, run.epochs) == (2**63 - 1, 0)


@pytest.mark.parametrize("values", [None, [("a", 1.0)], "a", 1.0])
def test_log_of_something_other_than_a_dict_is_a_type_error(store_dir, values):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(TypeError, match="run.log takes a dict"):
            run.log(values)


def test_configs_that_json_or_the_store_cannot_hold_are_refused_naming_the_place(store_dir):
    looped: dict = {"a": [1]}
    looped["a"].append(looped)
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["n"] = {}
        node = node["n"]
    cases = [
        (looped, "contains itself at config.a\\[1\\]"),
        (deep, "nested more than 100 levels"),
        ({"big": 10**400}, "config.big is an int of 1329 bits, too large for a float64"),
        ({"opt": {1: "a", "1": "b"}}, "keys 1 and '1' at config.opt both become '1'"),
        ({"x": np.longdouble(10) ** 4000}, "config.x is .* too large for a float64"),
    ]
    for config, message in cases:
        with pytest.raises(ValueError, match=message):
            epochal.start(store=store_dir, config=config)
    assert epochal.Store(store_dir).runs() == []


def test_a_tag_follows_the_same_rule_everywhere(store_dir):
    with pytest.raises(ValueError, match="at most 100 characters, got a string of 10000"):
        epochal.start(store=store_dir, tags=["x" * 10_000])
    with epochal.start(store=store_dir, tags=[" a ", "a", "b"]) as run:
        pass
    assert epochal.Store(store_dir).run(run.id).tags == ("a", "b")


def test_a_longdouble_past_float64_is_refused_not_stored_as_inf(store_dir):
    with epochal.start(store=store_dir) as run:
        with pytest.raises(ValueError, match="too large for a float64"):
            run.log({"a": np.longdouble(10) ** 4000})
        with pytest.raises(ValueError, match="too large for a float64"):
            run.log({"a": np.array([np.longdouble(10) ** 4000])})
        run.log({"a": np.longdouble("inf"), "b": np.float32("nan")})  # infinities and NaN as such are kept
    h = epochal.Store(store_dir).history(run.id, "a")
    assert h.values.tolist() == [float("inf")]


@pytest.mark.parametrize("backend", ["sqlite", "memory"])
def test_update_config_merges_and_is_stored_and_filterable(tmp_path, backend):
    where = tmp_path / "store" if backend == "sqlite" else f"memory://update-config-{tmp_path.name}"
    store = epochal.Store(where)
    with epochal.start("p", "cfg", config={"optim": {"lr": 0.1, "name": "sgd"}, "seed": 1}, store=store) as run:
        run.log({"loss": 1.0})
        new = run.update_config({"optim": {"lr": 0.01}, "batch": 64})
        assert new.to_dict() == {"optim": {"lr": 0.01, "name": "sgd"}, "seed": 1, "batch": 64}
        assert run.config["optim.lr"] == 0.01
        with pytest.raises(TypeError, match="dict"):
            run.update_config(["lr", 1])
        with pytest.raises(ValueError):
            run.update_config({"bad": 10 ** 400})  # past a float64
        assert run.config["batch"] == 64  # a refused update changed nothing
    record = store.run(run.id)
    assert record.config.to_dict() == {"optim": {"lr": 0.01, "name": "sgd"}, "seed": 1, "batch": 64}
    assert [r.id for r in store.runs(config={"optim.lr": 0.01, "batch": 64})] == [run.id]
    assert store.runs(config={"optim.lr": 0.1}) == []
    with pytest.raises(epochal.RunStateError):
        run.update_config({"late": 1})


def test_log_at_a_given_wall_time(store_dir):
    with epochal.start(store=store_dir) as run:
        run.log({"a": 1.0}, time=1_600_000_000.25)
        run.log({"a": 2.0}, step=1)
        for bad in (-1.0, float("nan"), float("inf"), "now", True):
            with pytest.raises(ValueError, match="seconds since the epoch"):
                run.log({"a": 3.0}, time=bad)
    with epochal.Store(store_dir) as store:
        history = store.history(run.id, "a")
    assert history.times[0] == 1_600_000_000.25 and history.times[1] > 1_700_000_000
    assert history.values.tolist() == [1.0, 2.0]


def test_start_and_resume_refuse_a_job_that_is_not_true_or_false(store_dir):
    import pytest

    with pytest.raises(TypeError, match="job is True .* or False .*, got 'rank0'"):
        epochal.start(store=store_dir, job="rank0")
    with epochal.start(store=store_dir, job=False) as run:  # one process: a run of its own all the same
        run.log({"x": 1.0})
    with pytest.raises(TypeError, match="got 1"):
        epochal.resume(run.id, store=store_dir, job=1)
    assert epochal.Store(store_dir).run(run.id).status == "finished"
