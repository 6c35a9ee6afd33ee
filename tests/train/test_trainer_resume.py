"""Exact resume of a Trainer fit: 6 epochs straight equal 3 + resume + 3, after a clean stop,
a kill -9 mid-epoch, or Ctrl-C mid-epoch, in new processes; a run killed before its first
checkpoint starts again from epoch 0; a resume that cannot load leaves the run as it was."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import epochal
from epochal.train.logger import TIMING_KEYS

SCRIPT = Path(__file__).with_name("trainer_script.py")
STEPS_PER_EPOCH = 10  # 150 samples, batches of 16


def _script(store, name, epochs, *options, seed=0):
    return subprocess.run([sys.executable, str(SCRIPT), str(store), name, str(epochs), *options, "--seed", str(seed)],
                          capture_output=True, text=True, timeout=300)


def _assert_same_numbers(store_dir, a, b):
    store = epochal.Store(store_dir)
    keys = store.keys(a)
    assert keys == store.keys(b)
    assert {"train/loss", "valid/accuracy", "lr", "train/epoch_loss", *TIMING_KEYS} <= set(keys)
    for key in set(keys) - set(TIMING_KEYS):
        ha, hb = store.history(a, key), store.history(b, key)
        assert ha.steps.tolist() == hb.steps.tolist(), key
        assert ha.epochs.tolist() == hb.epochs.tolist(), key
        assert ha.values.tolist() == hb.values.tolist(), key  # bit for bit


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    store = tmp_path_factory.mktemp("resume-store")
    result = _script(store, "straight", 6)
    assert result.returncode == 0, result.stderr
    return store


def test_three_epochs_then_resume_for_three_more_match_six_straight(straight):
    assert _script(straight, "halves", 3).returncode == 0
    record = epochal.Store(straight).run("halves")
    assert record.status == "finished" and record.epochs == 3
    resumed = _script(straight, "halves", 6, "--resume", seed=99)  # other initial weights: the checkpoint wins
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed run halves" in resumed.stdout
    _assert_same_numbers(straight, "straight", "halves")
    assert epochal.Store(straight).run("halves").epochs == 6


def test_kill_9_mid_epoch_then_resume_matches(straight):
    killed = _script(straight, "killed", 6, "--kill-at-step", str(4 * STEPS_PER_EPOCH + 5))
    assert killed.returncode == -9
    store = epochal.Store(straight)
    assert store.run("killed").status == "crashed" and store.run("killed").epochs == 4
    resumed = _script(straight, "killed", 6, "--resume", seed=5)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_numbers(straight, "straight", "killed")


def test_ctrl_c_mid_epoch_saves_a_checkpoint_and_resume_matches(straight):
    interrupted = _script(straight, "ctrl-c", 6, "--interrupt-at-step", str(2 * STEPS_PER_EPOCH + 4))
    assert interrupted.returncode != 0 and "KeyboardInterrupt" in interrupted.stderr
    store = epochal.Store(straight)
    record = store.run("ctrl-c")
    assert record.status == "interrupted"
    newest = max(store.checkpoints(record), key=lambda c: c.created)
    assert newest.kind == "resume" and newest.step == 2 * STEPS_PER_EPOCH + 4  # mid-epoch, not the epoch before
    resumed = _script(straight, "ctrl-c", 6, "--resume", seed=3)
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_numbers(straight, "straight", "ctrl-c")


def test_a_run_killed_before_its_first_checkpoint_starts_again_from_epoch_0(straight):
    killed = _script(straight, "early", 6, "--kill-at-step", "3")
    assert killed.returncode == -9
    store = epochal.Store(straight)
    assert store.run("early").status == "crashed" and not store.checkpoints("early")
    resumed = _script(straight, "early", 6, "--resume")  # the same initial weights: the straight run again
    assert resumed.returncode == 0, resumed.stderr
    assert "stopped before its first checkpoint; training it again from epoch 0" in resumed.stdout
    _assert_same_numbers(straight, "straight", "early")  # the new points replace the old
    record = store.run("early")
    assert (record.status, record.epochs, record.segment) == ("finished", 6, 1)


def test_a_resume_that_does_not_fit_raises_and_leaves_the_run_interrupted(straight):
    interrupted = _script(straight, "other-model", 6, "--interrupt-at-step", str(STEPS_PER_EPOCH + 4))
    assert interrupted.returncode != 0
    store = epochal.Store(straight)
    before = store.run("other-model")
    assert before.status == "interrupted"
    # In a process that goes on after the error, as a notebook would: nothing may finish the run later.
    code = ("import sys, epochal\nfrom trainer_script import make_trainer\n"
            "try:\n    make_trainer(sys.argv[1], 'other-model', 6, hidden=32).fit(resume=True)\n"
            "except epochal.CheckpointError as exc:\n    print('refused:', exc)\n")
    wider = subprocess.run([sys.executable, "-c", code, str(straight)], cwd=SCRIPT.parent, capture_output=True,
                           text=True, timeout=300)
    assert wider.returncode == 0, wider.stderr
    after = store.run("other-model")
    assert (after.status, after.ended, after.steps, after.epochs) == ("interrupted", before.ended, before.steps,
                                                                      before.epochs)
    assert re.search(r"refused: cannot resume.*other-model.*0\.weight", wider.stdout), wider.stdout
    resumed = _script(straight, "other-model", 6, "--resume", seed=3)  # the run is still resumable
    assert resumed.returncode == 0, resumed.stderr
    _assert_same_numbers(straight, "straight", "other-model")


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_mixed_precision_resumes_exactly(tmp_path, amp):
    """float16 with its GradScaler (whose scale the checkpoint carries) and bfloat16 without one: 2 + 2 epochs
    in two trainers equal 4 straight."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from trainer_script import make_trainer
    finally:
        sys.path.remove(str(SCRIPT.parent))
    make_trainer(tmp_path, "straight", 4, amp=amp).fit()
    make_trainer(tmp_path, "split", 2, amp=amp).fit()
    resumed = make_trainer(tmp_path, "split", 4, amp=amp, seed=99).fit(resume=True)
    assert (resumed.scaler is not None) == (amp == "fp16")
    _assert_same_numbers(tmp_path, "straight", "split")
