import subprocess
import sys

import epochal


def test_demo_trains_a_run_and_prints_the_run_table(tmp_path):
    store = tmp_path / "demo-store"
    result = subprocess.run([sys.executable, "-m", "epochal.cli", "demo", "--store", str(store), "--epochs", "2"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "$ epochal ls" in result.stdout and "valid/acc" in result.stdout
    record = epochal.Store(store).runs(project="demo")[0]
    assert record.status == "finished" and record.epochs == 2
    summary = epochal.Store(store).summary(record)
    assert summary["valid/acc"].last > 0.8  # it really learned something
    assert (store / f"{record.name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(epochal.Store(store).checkpoints(record)) >= 1
