import json
import subprocess
import sys
from pathlib import Path

import epochal

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_trains_tests_and_reports_a_digits_run(tmp_path):
    store = tmp_path / "demo-store"
    # The full 15 epochs (the default), so the accuracy asserted is the one the demo promises.
    result = subprocess.run([sys.executable, "-m", "epochal.cli", "demo", "--store", str(store), "--epochs", "15"],
                            check=False, capture_output=True, text=True, timeout=420)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    with epochal.Store(store) as opened:
        runs = opened.runs(project="demo")
        assert len(runs) == 1
        record = runs[0]
        assert record.status == "finished"
        assert 1 <= record.epochs <= 15  # early stopping may end it sooner
        summary = opened.summary(record)
        assert summary["test/accuracy"].last >= 0.95
        assert summary["valid/accuracy"].max >= 0.95
        checkpoints = opened.checkpoints(record)

    assert {c.kind for c in checkpoints} == {"weights", "resume"}  # the best weights and the resumable last
    folder = Path(record.path)
    chart = folder / "curves.png"
    assert chart.read_bytes()[:8] == PNG_MAGIC
    tables = folder / "tables"
    assert (tables / "summary_table.csv").is_file()
    assert (tables / "test_summary_table.csv").is_file()
    assert sorted(p.name for p in (tables / "epoch_details").glob("epoch001_*.csv")) == [
        "epoch001_train.csv", "epoch001_valid.csv"]

    # The dynamics of every epoch, fitted, measured and drawn.
    dynamics = folder / "dynamics"
    recorded = sorted(int(p.stem.split("-")[1]) for p in dynamics.glob("epoch-*.npz"))
    assert recorded == list(range(record.epochs))
    projection = json.loads((dynamics / "projection" / "projection.json").read_text())
    assert projection["epochs"] == recorded and projection["samples"] == 1527  # 1,257 train and 270 test images
    quality = json.loads((dynamics / "projection" / "quality.json").read_text())
    assert quality["mean"]["train"]["ppr"] > 0.8 and -1 <= quality["trajectory"]["test"] <= 1
    assert (dynamics / "projection" / "dynamics.gif").read_bytes()[:6] == b"GIF89a"
    assert (dynamics / "sprites.npz").is_file()

    out = result.stdout
    assert f"{record.name} ({record.id})" in out
    assert str(dynamics / "projection" / "dynamics.gif") in out and "train NPR@15 0." in out
    for where in (str(folder), str(tables), str(chart)):
        assert where in out
    assert "$ epochal ls" in out and out.rstrip().splitlines()[-1].startswith(record.id)
