"""atomic_write, atomic_file and replace_folder: a reader sees the old file or the new one, never half of one."""

import os

import pytest

from epochal.atomic import atomic_file, atomic_write, replace_folder, temporary_beside


def test_bytes_text_and_a_writing_function(tmp_path):
    atomic_write(tmp_path / "a.bin", b"\x00\x01")
    atomic_write(tmp_path / "b.txt", "héllo")
    atomic_write(tmp_path / "c.bin", lambda file: file.write(b"from a function"))
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_bytes() == "héllo".encode("utf-8")
    assert (tmp_path / "c.bin").read_bytes() == b"from a function"
    assert sorted(os.listdir(tmp_path)) == ["a.bin", "b.txt", "c.bin"]  # no temporary left


def test_the_folder_is_created_and_a_file_replaced(tmp_path):
    target = tmp_path / "new" / "folder" / "file.txt"
    atomic_write(target, "first")
    atomic_write(target, "second")
    assert target.read_text() == "second"
    assert os.listdir(target.parent) == ["file.txt"]


@pytest.mark.parametrize("data", [b"new", "new"])
def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, data):
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def fail(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, data)
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_a_writing_function_that_raises_leaves_the_old_file(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")

    def half(file):
        file.write(b"half of it")
        raise ValueError("the writer broke")

    with pytest.raises(ValueError, match="the writer broke"):
        atomic_write(target, half)
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file"]


def test_text_mode_keeps_the_newlines_it_is_given(tmp_path):
    target = tmp_path / "table.csv"
    with atomic_file(target, "w") as out:
        out.write("a,b\r\n1,2\nü\r")
    assert target.read_bytes() == "a,b\r\n1,2\nü\r".encode("utf-8")


def test_the_file_appears_only_when_the_block_ends(tmp_path):
    target = tmp_path / "file"
    with atomic_file(target) as out:
        out.write(b"data")
        out.flush()
        assert not target.exists()
        assert os.listdir(tmp_path) == [temporary_beside(target).name]
    assert target.read_bytes() == b"data"


def test_other_modes_are_refused(tmp_path):
    with pytest.raises(ValueError, match="'w' or 'wb'"), atomic_file(tmp_path / "file", "a"):
        pass


def test_replace_folder_swaps_the_whole_folder(tmp_path):
    target = tmp_path / "sprites"
    target.mkdir()
    (target / "0.png").write_bytes(b"old 0")
    (target / "9.png").write_bytes(b"old 9")
    staging = temporary_beside(target)
    staging.mkdir()
    (staging / "0.png").write_bytes(b"new 0")
    replace_folder(staging, target)
    assert os.listdir(target) == ["0.png"]  # nothing of the old folder is mixed in
    assert (target / "0.png").read_bytes() == b"new 0"
    assert os.listdir(tmp_path) == ["sprites"]  # neither the staging nor the old folder is left


def test_replace_folder_puts_a_new_folder_in_place(tmp_path):
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "a").write_text("a")
    replace_folder(staging, tmp_path / "target")
    assert os.listdir(tmp_path) == ["target"]
    assert (tmp_path / "target" / "a").read_text() == "a"
