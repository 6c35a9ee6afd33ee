"""The ``epochal`` command, driven through ``main([...])`` and as an installed console script."""

from __future__ import annotations

import io
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml

import epochal
from epochal.cli import main
from epochal.interop import read_csv, read_json
from epochal.store.records import RunUpdate, WriteBatch

CONFIG = {"lr": 0.01, "optim": {"name": "adam", "betas": [0.9, 0.999]}, "seed": 7}


@pytest.fixture
def store_dir(tmp_path):
    """Two finished runs: 'alpha' (project p1, a checkpoint, NaN and inf values) then 'beta' (p2, tag t)."""
    directory = tmp_path / "store"
    with epochal.Store(directory) as store:
        with epochal.start(project="p1", name="alpha", config=CONFIG, description="first try", store=store) as run:
            for step in range(20):
                run.log({"train/loss": 1 / (step + 1), "train/acc": step / 20, "lr": 0.01})
                run.step()
            run.log({"valid/loss": 0.5})
            run.log({"valid/loss": math.nan}, step=21)
            run.log({"valid/loss": 0.123456, "valid/acc": math.inf}, step=22)
            run.epoch()
            run.save_checkpoint(models=torch.nn.Linear(3, 2), metric=("valid/loss", 0.123456), mode="min")
        time.sleep(0.01)  # beta is the newer run
        with epochal.start(project="p2", name="beta", tags=["t"], store=store) as run:
            run.log({"train/loss": 2.5, "lr": 0.001})
    return directory


def run_cli(capsys, *argv):
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def run_process(*argv):
    return subprocess.run([str(a) for a in argv], check=False, capture_output=True, text=True, timeout=120)


def ls_rows(out):
    """Rows of `epochal ls` as lists of cells (the start time is two cells: date and time)."""
    return [line.split() for line in out.splitlines()]


# -- ls --------------------------------------------------------------------------------------------


def test_ls_lists_runs_newest_first_with_last_values_of_main_metrics(store_dir, capsys):
    status, out, err = run_cli(capsys, "ls", "--store", store_dir)
    assert (status, err) == (0, "")
    header, *rows = ls_rows(out)
    assert header == ["id", "name", "project", "status", "start", "duration", "valid/loss", "valid/acc", "train/loss"]
    with epochal.Store(store_dir) as store:
        beta, alpha = store.runs()
    start = time.strftime("%Y-%m-%d %H:%M", time.localtime(beta.started)).split()
    assert rows[0] == [beta.id, "beta", "p2", "finished", *start, "0s", "-", "-", "2.5"]
    assert rows[1][:4] == [alpha.id, "alpha", "p1", "finished"]
    assert rows[1][7:] == ["0.1235", "inf", "0.05"]  # the last values, 4 significant digits
    assert len(rows) == 2


def test_ls_filters_limits_and_chosen_keys(store_dir, capsys):
    def names(*options):
        status, out, _ = run_cli(capsys, "ls", "--store", store_dir, *options)
        assert status == 0
        return [row[1] for row in ls_rows(out)[1:]]

    assert names("--project", "p1") == ["alpha"]
    assert names("--tag", "t") == ["beta"]
    assert names("--status", "finished") == ["beta", "alpha"]
    assert names("--limit", "1") == ["beta"]
    status, out, _ = run_cli(capsys, "ls", "--store", store_dir, "--keys", "lr", "train/acc")
    header, beta, alpha = ls_rows(out)
    assert header[-2:] == ["lr", "train/acc"]
    assert beta[-2:] == ["0.001", "-"] and alpha[-2:] == ["0.01", "0.95"]
    status, out, _ = run_cli(capsys, "ls", "--store", store_dir, "--status", "failed")
    assert (status, out) == (0, f"no runs in {store_dir} with status=failed\n")


READING = [
    ["ls"], ["show", "alpha"], ["export", "alpha", "-o", "out.csv"], ["plot", "alpha", "-o", "out.png"],
    ["rm", "alpha", "--yes"], ["ui", "--port", "0"], ["dynamics", "samples", "alpha"], ["dynamics", "fit", "alpha"],
    ["dynamics", "quality", "alpha"], ["dynamics", "plot", "alpha"],
]


@pytest.mark.parametrize("argv", READING, ids=" ".join)
def test_a_store_that_is_not_there_is_an_error_and_is_not_created(tmp_path, capsys, monkeypatch, argv):
    monkeypatch.chdir(tmp_path)
    status, out, err = run_cli(capsys, *argv, "--store", "TYPO")
    assert (status, out) == (2, "")
    assert err.startswith("epochal: no store in 'TYPO'") and err.count("\n") == 1
    assert "give --store DIR or set EPOCHAL_DIR" in err
    assert os.listdir(tmp_path) == []  # nothing was created: no store, no output file


def test_ls_of_a_default_store_that_is_not_there(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("EPOCHAL_DIR", str(tmp_path / "nothing-here"))
    status, out, err = run_cli(capsys, "ls")
    assert (status, out) == (2, "") and err.startswith(f"epochal: no store in '{tmp_path / 'nothing-here'}'")
    assert not (tmp_path / "nothing-here").exists()


def test_a_damaged_database_is_one_line(tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "epochal.db").write_bytes(os.urandom(8192))
    for argv in (["ls"], ["show", "x"], ["rm", "x", "--yes"]):
        status, out, err = run_cli(capsys, *argv, "--store", tmp_path / "bad")
        assert (status, out) == (2, "") and err.count("\n") == 1 and "Traceback" not in err
        assert err.startswith(f"epochal: cannot open the store in '{tmp_path / 'bad'}'")


def test_a_file_that_cannot_be_written_is_one_line_and_exit_2(store_dir, tmp_path, capsys):
    (tmp_path / "taken.csv").mkdir()
    status, out, err = run_cli(
        capsys, "export", "alpha", "-o", tmp_path / "taken.csv", "--format", "csv", "--store", store_dir
    )
    assert (status, out) == (2, "") and err == f"epochal: Is a directory: '{tmp_path / 'taken.csv'}'\n"


def test_ls_uses_the_store_from_the_environment(store_dir, capsys, monkeypatch):
    monkeypatch.setenv("EPOCHAL_DIR", str(store_dir))
    status, out, _ = run_cli(capsys, "ls")
    assert status == 0 and [row[1] for row in ls_rows(out)[1:]] == ["beta", "alpha"]


def test_durations_and_numbers_are_compact():
    from epochal.display import duration as _duration
    from epochal.display import number as _number
    from epochal.display import size as _size

    assert [_duration(s) for s in (0.4, 59.9, 65, 3600, 7380, 90061)] == [
        "0s", "59s", "1m05s", "1h00m", "2h03m", "1d01h"
    ]
    assert [_number(x) for x in (0.123456, 123456.0, 2.5, math.nan, -math.inf, None)] == [
        "0.1235", "1.235e+05", "2.5", "nan", "-inf", "-"
    ]
    assert [_size(n) for n in (512, 16_700, 3 * 1024**3)] == ["512 B", "16.3 KiB", "3.0 GiB"]


# -- show ------------------------------------------------------------------------------------------


def test_show_prints_record_config_summary_and_checkpoints(store_dir, capsys):
    status, out, err = run_cli(capsys, "show", "alpha", "--store", store_dir)
    assert (status, err) == (0, "")
    with epochal.Store(store_dir) as store:
        record = store.run("alpha")
        (checkpoint,) = store.checkpoints(record)
    fields, config, summary, checkpoints = out.split("\n\n")
    lines = dict(line.split(None, 1) for line in fields.splitlines() if not line.startswith("git commit"))
    assert lines["id"] == record.id and lines["project"] == "p1" and lines["status"] == "finished"
    assert lines["description"] == "first try" and lines["steps"] == "20" and lines["epochs"] == "1"
    assert lines["pid"] == str(os.getpid()) and lines["python"] == record.python
    assert "ranks" not in lines  # a single-process run
    assert lines["started"] == time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.started))

    assert config.startswith("config:\n")
    assert "  optim:\n    name: adam\n" in config
    assert yaml.safe_load(textwrap.dedent(config.split("\n", 1)[1])) == CONFIG

    header, *rows = [line.split() for line in summary.splitlines()[1:]]
    assert header == ["key", "count", "last", "min", "max", "best"]
    by_key = {row[0]: row[1:] for row in rows}
    assert list(by_key) == ["lr", "train/acc", "train/loss", "valid/acc", "valid/loss"]
    assert by_key["valid/loss"] == ["3", "0.123456", "0.123456", "0.5", "0.123456", "(min)"]
    assert by_key["train/acc"] == ["20", "0.95", "0", "0.95", "0.95", "(max)"]
    assert by_key["valid/acc"] == ["1", "inf", "inf", "inf", "inf", "(max)"]

    header, row = [line.split() for line in checkpoints.strip().splitlines()[1:]]
    assert header == ["file", "step", "epoch", "metric", "size", "sha256"]
    assert row[:4] == [checkpoint.path, "20", "1", "valid/loss=0.123456"]
    assert row[-1] == checkpoint.sha256[:12] and row[-2] in ("B", "KiB")


def test_show_a_ddp_run_lists_each_ranks_process(store_dir, capsys):
    with epochal.Store(store_dir) as store:
        ranks = (("host-a", 123), ("host-a", 124))
        store.write(WriteBatch(run_updates=(RunUpdate(store.run("beta").id, ranks=ranks),)))
    status, out, _ = run_cli(capsys, "show", "beta", "--store", store_dir)
    assert status == 0
    lines = dict(line.split(None, 1) for line in out.split("\n\n")[0].splitlines())
    assert lines["ranks"] == "2 (host-a pid 123, host-a pid 124)"


def test_show_a_run_with_nothing_logged(tmp_path, capsys):
    with epochal.start(project="p", name="quiet", store=tmp_path) as run:
        pass
    status, out, _ = run_cli(capsys, "show", run.id[:6], "--store", tmp_path)
    assert status == 0
    assert "config: (none)" in out and "summary: (no values logged)" in out and "checkpoints: (none)" in out


# -- export and plot -------------------------------------------------------------------------------


def assert_same_as_store(store_dir, read):
    with epochal.Store(store_dir) as store:
        assert list(read) == store.keys("alpha")
        for key, got in read.items():
            want = store.history("alpha", key)
            for column in ("steps", "epochs", "values", "times"):
                assert getattr(got, column).tobytes() == getattr(want, column).tobytes(), (key, column)


def test_export_csv_to_a_file_round_trips(store_dir, tmp_path, capsys):
    path = tmp_path / "alpha.csv"
    status, out, err = run_cli(capsys, "export", "alpha", "--store", store_dir, "-o", path)
    assert (status, err) == (0, "")
    assert out.startswith("wrote 64 points of run alpha") and str(path) in out
    assert "valid/loss,21,0,nan," in path.read_text()
    assert_same_as_store(store_dir, read_csv(path))


def test_export_json_to_stdout_round_trips(store_dir, capsys):
    status, out, err = run_cli(capsys, "export", "alpha", "--store", store_dir, "--format", "json", "-o", "-")
    assert (status, err) == (0, "")
    assert_same_as_store(store_dir, read_json(io.StringIO(out)))


def test_export_format_follows_the_extension(store_dir, tmp_path, capsys):
    path = tmp_path / "alpha.JSON"
    assert run_cli(capsys, "export", "alpha", "--store", store_dir, "-o", path, "--keys", "lr")[0] == 0
    assert list(read_json(path)) == ["lr"]
    status, out, err = run_cli(capsys, "export", "alpha", "--store", store_dir, "-o", tmp_path / "alpha.txt")
    assert (status, out) == (2, "")
    assert err.count("\n") == 1 and "--format" in err
    assert not (tmp_path / "alpha.txt").exists()


def test_export_parquet_from_the_extension_round_trips(store_dir, tmp_path, capsys):
    pytest.importorskip("pyarrow")
    from epochal.interop.parquet import read_parquet

    path = tmp_path / "alpha.parquet"
    status, out, err = run_cli(capsys, "export", "alpha", "--store", store_dir, "-o", path)
    assert (status, err) == (0, "")
    assert out.startswith("wrote 64 points of run alpha")
    assert_same_as_store(store_dir, read_parquet(path))
    status, out, err = run_cli(capsys, "export", "alpha", "--store", store_dir, "--format", "parquet", "-o", "-")
    assert status == 2 and "not to stdout" in err and out == ""


def test_plot_writes_a_png(store_dir, tmp_path, capsys):
    path = tmp_path / "alpha.png"
    status, out, err = run_cli(
        capsys, "plot", "alpha", "--store", store_dir, "-o", path, "--keys", "train/loss", "valid/loss"
    )
    assert (status, out, err) == (0, f"wrote {path}\n", "")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    height, width, _ = matplotlib.image.imread(path).shape
    assert width >= 400 and height >= 300


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["show", "nope"], ["export", "nope", "-o", "out.csv"], ["plot", "nope", "-o", "out.png"], ["rm", "nope", "--yes"]],
)
def test_unknown_run_is_one_line_and_status_2(store_dir, capsys, argv):
    status, out, err = run_cli(capsys, *argv, "--store", store_dir)
    assert (status, out) == (2, "")
    assert err.startswith("epochal: ") and err.count("\n") == 1 and "'nope'" in err


def test_unknown_key_is_one_line_and_status_2(store_dir, tmp_path, capsys):
    status, out, err = run_cli(
        capsys, "plot", "alpha", "--store", store_dir, "-o", tmp_path / "x.png", "--keys", "oops"
    )
    assert (status, out) == (2, "")
    assert err.startswith("epochal: ") and err.count("\n") == 1 and "'oops'" in err


def test_a_missing_store_is_an_error_and_is_not_created(tmp_path, capsys):
    missing = tmp_path / "typo"
    status, out, err = run_cli(capsys, "show", "alpha", "--store", missing)
    assert (status, out) == (2, "")
    assert err.startswith("epochal: no store in") and err.count("\n") == 1
    assert not missing.exists()


def test_usage_errors_exit_2(store_dir, capsys):
    for argv in (["ls", "--limit", "0"], ["ls", "--status", "happy"], ["show"], ["export", "alpha"], ["frobnicate"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2, argv
    assert run_cli(capsys)[0] == 2  # no command: the help, on stderr


# -- rm --------------------------------------------------------------------------------------------


def test_rm_without_yes_deletes_nothing(store_dir, capsys):
    with epochal.Store(store_dir) as store:
        alpha = store.run("alpha")
    status, out, err = run_cli(capsys, "rm", "alpha", "--store", store_dir)
    assert (status, out) == (2, "")
    assert "--yes" in err and err.count("\n") == 1
    with epochal.Store(store_dir) as store:
        assert store.run("alpha").id == alpha.id
        assert len(store.checkpoints(alpha)) == 1
    assert Path(alpha.path).is_dir()


def test_rm_with_yes_removes_records_and_folder(store_dir, capsys):
    with epochal.Store(store_dir) as store:
        alpha = store.run("alpha")
    assert any(Path(alpha.path).rglob("*.pt"))
    status, out, err = run_cli(capsys, "rm", alpha.id[:8], "alpha", "--yes", "--store", store_dir)
    assert (status, out, err) == (0, f"deleted alpha ({alpha.id})\n", "")
    assert not Path(alpha.path).exists()
    with epochal.Store(store_dir) as store:
        assert [r.name for r in store.runs()] == ["beta"]
        with pytest.raises(epochal.RunNotFoundError):
            store.run(alpha.id)
        assert store._backend.keys(alpha.id) == [] and store._backend.checkpoints(alpha.id) == []


def test_rm_refuses_a_running_run(store_dir, capsys):
    run = epochal.start(project="p1", name="live", store=store_dir)
    try:
        status, out, err = run_cli(capsys, "rm", "beta", "live", "--yes", "--store", store_dir)
        assert (status, out) == (2, "")
        assert "still running" in err and err.count("\n") == 1
        with epochal.Store(store_dir) as store:
            assert [r.name for r in store.runs()] == ["live", "beta", "alpha"]
    finally:
        run.finish()


def test_rm_on_a_locked_store_ends_within_its_wait_with_one_line(store_dir):
    with epochal.Store(store_dir) as store:
        beta = store.run("beta")
    locker = sqlite3.connect(store_dir / "epochal.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")  # another process writing, and not letting go
    try:
        started = time.monotonic()
        result = run_process(
            sys.executable, "-m", "epochal", "rm", "beta", "--yes", "--wait", "1", "--store", store_dir
        )
        took = time.monotonic() - started
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(
        f"epochal: the store in '{store_dir}' is locked by another process (database is locked)"
    )
    assert result.stderr.count("\n") == 1 and took < 8
    with epochal.Store(store_dir) as store:
        assert store.run("beta").id == beta.id
    assert Path(beta.path).is_dir()


def test_rm_wait_takes_seconds(store_dir):
    with pytest.raises(SystemExit) as exit_info:
        main(["rm", "beta", "--wait", "soon", "--store", str(store_dir)])
    assert exit_info.value.code == 2


def test_rm_of_an_id_crafted_into_the_database_deletes_nothing_outside(store_dir, tmp_path, capsys):
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("keep me")
    with epochal.Store(store_dir) as store:
        beta = store.run("beta")
    with sqlite3.connect(store_dir / "epochal.db") as db:
        db.execute("UPDATE runs SET id = '../../victim' WHERE id = ?", (beta.id,))
    for ref in ("../../victim", "beta"):
        status, out, err = run_cli(capsys, "rm", ref, "--yes", "--store", store_dir)
        assert (status, out) == (2, "") and err.count("\n") == 1
    assert (victim / "precious.txt").read_text() == "keep me"
    assert (store_dir / "epochal.db").is_file() and Path(store_dir / "runs").is_dir()


# -- help, version and the installed script --------------------------------------------------------


@pytest.mark.parametrize("command", ["ls", "show", "export", "plot", "rm", "import", "ui", "demo"])
def test_every_command_has_help_and_a_store_option(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: epochal {command}") and "--store DIR" in out and "EPOCHAL_DIR" in out


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"epochal {epochal.__version__}\n"


def test_installed_console_script(store_dir):
    script = Path(sys.executable).with_name("epochal")
    if not script.exists():
        pytest.skip(f"no console script next to {sys.executable}")
    listed = run_process(script, "ls", "--store", store_dir)
    assert listed.returncode == 0 and listed.stderr == ""
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:]] == ["beta", "alpha"]
    version = run_process(script, "--version")
    assert (version.returncode, version.stdout) == (0, f"epochal {epochal.__version__}\n")


def test_module_entry_point_reports_errors_without_a_traceback(store_dir):
    result = run_process(sys.executable, "-m", "epochal.cli", "show", "nope", "--store", store_dir)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"epochal: no run with id or name 'nope' in the store '{store_dir}'\n"
