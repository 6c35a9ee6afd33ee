"""Exporting a run to CSV and JSON and reading it back gives every point, bit for bit."""

from __future__ import annotations

import io
import json
import math

import pytest

import epochal
from epochal.interop import export_csv, export_json, read_csv, read_json

# Floats that a careless writer gets wrong: rounding, subnormals, the sign of zero, the extremes.
TRICKY = [0.5, math.nan, math.inf, -math.inf, 0.1 + 0.2, 1e-300, 5e-324, -0.0, 1.7976931348623157e308, 1 / 3]


@pytest.fixture
def run_id(store):
    config = {"lr": 0.1, "model": {"depth": 2, "dropout": math.nan}, "sizes": [1, 2]}
    with epochal.start(project="p", name="tricky", config=config, tags=["x"], store=store) as run:
        for index, value in enumerate(TRICKY):
            run.log({"train/loss": value, "lr": value * 2})
            run.step()
            if index % 4 == 3:
                run.epoch()
        run.log({"valid/loss": 0.1 + 0.2})
    return run.id


def assert_identical(got, want):
    """Same key and the same bits in every column (so -0.0 differs from 0.0, and NaN equals NaN)."""
    assert got.key == want.key
    for column in ("steps", "epochs", "values", "times"):
        a, b = getattr(got, column), getattr(want, column)
        assert a.dtype == b.dtype, column
        assert a.tobytes() == b.tobytes(), f"{got.key}: {column} differ: {a!r} != {b!r}"


def assert_round_trip(store, run_id, read, *, superseded=False):
    keys = store.keys(run_id)
    assert list(read) == keys
    for key in keys:
        assert_identical(read[key], store.history(run_id, key, superseded=superseded))


def test_csv_round_trips_every_point_bit_for_bit(store, run_id, tmp_path):
    path = tmp_path / "run.csv"
    points = export_csv(store, run_id, path)
    assert points == 2 * len(TRICKY) + 1
    assert_round_trip(store, run_id, read_csv(path))


def test_csv_is_long_format_with_shortest_round_trip_floats(store, run_id, tmp_path):
    path = tmp_path / "run.csv"
    export_csv(store, "tricky", path)
    lines = path.read_text().splitlines()
    assert lines[0] == "key,step,epoch,value,time"
    loss_values = [line.split(",")[3] for line in lines if line.startswith("train/loss,")]
    assert loss_values == ["0.5", "nan", "inf", "-inf", "0.30000000000000004", "1e-300", "5e-324", "-0.0",
                           "1.7976931348623157e+308", "0.3333333333333333"]
    step, epoch = lines[-1].split(",")[1:3]
    assert lines[-1].startswith("valid/loss,") and (step, epoch) == (str(len(TRICKY)), "2")


def test_json_round_trips_every_point_and_the_record(store, run_id, tmp_path):
    path = tmp_path / "run.json"
    points = export_json(store, run_id, path)
    assert points == 2 * len(TRICKY) + 1
    assert_round_trip(store, run_id, read_json(path))

    def no_bare_constants(name):
        raise AssertionError(f"{name} is not JSON")

    document = json.loads(path.read_text(), parse_constant=no_bare_constants)
    assert document["series"]["train/loss"]["values"][1:4] == ["nan", "inf", "-inf"]
    assert document["series"]["train/loss"]["values"][4] == 0.1 + 0.2
    record = store.run(run_id)
    run = document["run"]
    assert run["id"] == record.id and run["name"] == "tricky" and run["project"] == "p"
    assert run["status"] == "finished" and run["tags"] == ["x"]
    assert run["started"] == record.started and run["steps"] == len(TRICKY)
    assert run["config"] == {"lr": 0.1, "model": {"depth": 2, "dropout": "nan"}, "sizes": [1, 2]}


@pytest.mark.parametrize("export, read", [(export_csv, read_csv), (export_json, read_json)])
def test_superseded_points_only_when_asked(store, tmp_path, export, read):
    with epochal.start(project="p", name="resumed", store=store) as run:
        for step in range(10):
            run.log({"train/loss": float(step)}, step=step)
    with epochal.resume(run.id, store=store) as again:
        for step in range(5, 8):
            again.log({"train/loss": step + 0.5}, step=step)
    newest, everything = tmp_path / "newest", tmp_path / "all"
    assert export(store, run.id, newest) == 8
    assert export(store, run.id, everything, superseded=True) == 13
    assert_identical(read(newest)["train/loss"], store.history(run.id, "train/loss"))
    assert_identical(read(everything)["train/loss"], store.history(run.id, "train/loss", superseded=True))


@pytest.mark.parametrize("export, read", [(export_csv, read_csv), (export_json, read_json)])
def test_chosen_keys_and_open_files(store, run_id, export, read):
    buffer = io.StringIO()
    export(store, run_id, buffer, keys=["valid/loss", "lr"])
    got = read(io.StringIO(buffer.getvalue()))
    assert list(got) == ["valid/loss", "lr"]
    assert_identical(got["lr"], store.history(run_id, "lr"))


@pytest.mark.parametrize("export", [export_csv, export_json])
def test_unknown_key_raises_and_writes_nothing(store, run_id, tmp_path, export):
    path = tmp_path / "out"
    with pytest.raises(epochal.SeriesNotFoundError, match="no key 'valid/acc'"):
        export(store, run_id, path, keys=["lr", "valid/acc"])
    assert list(tmp_path.iterdir()) == [tmp_path / "store"]


def test_unknown_run_raises(store, tmp_path):
    with pytest.raises(epochal.RunNotFoundError):
        export_csv(store, "nope", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_readers_reject_other_files(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("step,value\n1,2\n")
    with pytest.raises(ValueError, match="header"):
        read_csv(other)
    other.write_text("key,step,epoch,value,time\nloss,1,0,fast,1.0\n")
    with pytest.raises(ValueError, match="line 2"):
        read_csv(other)
    with pytest.raises(ValueError, match="series"):
        read_json(io.StringIO('{"runs": []}'))
    with pytest.raises(ValueError, match="'loss'"):
        read_json(io.StringIO('{"series": {"loss": {"steps": [1], "epochs": [0], "values": ["NaN"], "times": [1]}}}'))


def test_run_without_values_exports_only_the_header(store, tmp_path):
    with epochal.start(project="p", name="empty", store=store) as run:
        pass
    path = tmp_path / "empty.csv"
    assert export_csv(store, run.id, path) == 0
    assert path.read_text() == "key,step,epoch,value,time\n"
    assert read_csv(path) == {}
    assert export_json(store, run.id, tmp_path / "empty.json") == 0
    assert read_json(tmp_path / "empty.json") == {}


def test_parquet_round_trips_every_point_bit_for_bit_with_the_record(store, run_id, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    from epochal.interop.parquet import RUN_METADATA, export_parquet, read_parquet

    path = tmp_path / "run.parquet"
    assert export_parquet(store, run_id, path) == 2 * len(TRICKY) + 1
    assert_round_trip(store, run_id, read_parquet(path))
    table = pq.read_table(path)
    assert table.schema.names == ["key", "step", "epoch", "value", "time"]
    assert str(table.schema.field("step").type) == "int64" and str(table.schema.field("value").type) == "double"
    record = json.loads(table.schema.metadata[RUN_METADATA])
    assert record["name"] == "tricky" and record["config"]["model"]["dropout"] == "nan"
    pandas = pytest.importorskip("pandas")
    frame = pandas.read_parquet(path)
    assert frame.loc[frame.key == "train/loss", "value"].tolist()[:2] == [0.5, pytest.approx(math.nan, nan_ok=True)]
