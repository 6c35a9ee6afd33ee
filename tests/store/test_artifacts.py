"""A run's folder of files on a local folder and on a real S3-compatible server (moto over HTTP)."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epochal.atomic import temporary_beside
from epochal.store import artifacts


@pytest.fixture(params=["local", "s3"])
def destination(request, tmp_path):
    """A folder URL of each kind: the same tests prove that both behave alike."""
    if request.param == "local":
        return str(tmp_path / "artifacts" / "runs")
    return request.getfixturevalue("s3_bucket")


def _listing(url):
    """Every file under ``url``, as POSIX paths relative to it."""
    fs, root = artifacts.filesystem(url)
    fs.invalidate_cache()
    root = root.rstrip("/")
    return sorted(path[len(root) + 1 :] for path in fs.find(root))


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_is_local():
    assert artifacts.is_local("runs/abc")
    assert artifacts.is_local("/data/runs")
    assert artifacts.is_local("file:///data/runs")
    assert not artifacts.is_local("s3://bucket/runs")
    assert not artifacts.is_local("gs://bucket/runs")


def test_join():
    assert artifacts.join("s3://bucket/prefix", "run", "x.pt") == "s3://bucket/prefix/run/x.pt"
    assert artifacts.join("s3://bucket/prefix/", "/run/", "x.pt") == "s3://bucket/prefix/run/x.pt"
    assert artifacts.join("s3://bucket", "a//b") == "s3://bucket/a/b"
    assert artifacts.join("s3://", "bucket", "k") == "s3://bucket/k"
    assert artifacts.join("/data/runs", "a", "") == "/data/runs/a"
    assert artifacts.join("/", "data") == "/data"
    assert artifacts.join("s3://bucket/prefix") == "s3://bucket/prefix"


def test_put_file_round_trip_of_5_mb(destination, tmp_path):
    data = os.urandom(5 * 1024 * 1024 + 17)
    source = _write(tmp_path / "source" / "model.pt", data)
    url = artifacts.join(destination, "checkpoints", "model.pt")

    artifacts.put_file(source, url)

    assert artifacts.sha256_of(url) == hashlib.sha256(data).hexdigest()
    assert artifacts.read_bytes(url) == data
    assert artifacts.exists(url)
    assert _listing(destination) == ["checkpoints/model.pt"]  # no temporary left beside it


def test_put_file_replaces_an_existing_file(destination, tmp_path):
    url = artifacts.join(destination, "last.pt")
    artifacts.put_file(_write(tmp_path / "a", b"old"), url)
    artifacts.put_file(_write(tmp_path / "b", b"new"), url)
    assert artifacts.read_bytes(url) == b"new"
    assert _listing(destination) == ["last.pt"]


def test_put_file_of_a_name_with_glob_characters(destination, tmp_path):
    url = artifacts.join(destination, "epoch[3]*.pt")
    artifacts.put_file(_write(tmp_path / "x", b"weights"), url)
    assert _listing(destination) == ["epoch[3]*.pt"]


def test_failed_upload_leaves_no_final_key_and_no_temporary(s3_bucket, tmp_path, monkeypatch):
    source = _write(tmp_path / "model.pt", b"x" * 1000)
    url = artifacts.join(s3_bucket, "model.pt")
    fs, _ = artifacts.filesystem(url)

    def broken_copy(*args, **kwargs):
        raise OSError("connection reset during the copy")

    monkeypatch.setattr(fs, "cp_file", broken_copy)  # the S3 driver fails; epochal's code runs as it is
    with pytest.raises(OSError, match="connection reset"):
        artifacts.put_file(source, url)

    monkeypatch.undo()
    assert not artifacts.exists(url)
    assert _listing(s3_bucket) == []


def test_unreadable_local_source_leaves_nothing(destination, tmp_path):
    url = artifacts.join(destination, "model.pt")
    with pytest.raises(FileNotFoundError):
        artifacts.put_file(tmp_path / "missing.pt", url)
    assert not artifacts.exists(url)


def test_upload_folder_is_idempotent_and_skips_temporaries_and_symlinks(destination, tmp_path):
    run = tmp_path / "run"
    _write(run / "checkpoints" / "last.pt", b"weights")
    _write(run / "dynamics" / "loss.npy", b"array")
    _write(run / "plot.png", b"png")
    _write(temporary_beside(run / "checkpoints" / "next.pt"), b"half a checkp")  # a writer is filling it
    _write(run / ".old.pt.12345.tmp", b"an older writer's temporary")
    (run / "link.pt").symlink_to(run / "plot.png")

    shipped = artifacts.upload_folder(run, destination)

    expected = ["checkpoints/last.pt", "dynamics/loss.npy", "plot.png"]
    assert sorted(shipped) == expected
    assert _listing(destination) == expected
    stat = (run / "plot.png").stat()
    assert shipped["plot.png"] == (stat.st_size, stat.st_mtime_ns)

    fs, root = artifacts.filesystem(destination)
    before = {name: fs.modified(f"{root}/{name}") for name in expected}
    assert artifacts.upload_folder(run, destination, shipped) == shipped
    assert {name: fs.modified(f"{root}/{name}") for name in expected} == before  # nothing was put again


def test_upload_folder_puts_changed_and_new_files_again(destination, tmp_path):
    run = tmp_path / "run"
    last = _write(run / "last.pt", b"epoch 1")
    _write(run / "config.yaml", b"lr: 0.1")
    shipped = artifacts.upload_folder(run, destination)
    fs, root = artifacts.filesystem(destination)
    config_put_at = fs.modified(f"{root}/config.yaml")

    last.write_bytes(b"epoch 2")  # same size: only the mtime tells
    os.utime(last, ns=(shipped["last.pt"][1] + 10**9, shipped["last.pt"][1] + 10**9))
    _write(run / "best.pt", b"best")
    shipped = artifacts.upload_folder(run, destination, shipped)

    assert artifacts.read_bytes(artifacts.join(destination, "last.pt")) == b"epoch 2"
    assert artifacts.read_bytes(artifacts.join(destination, "best.pt")) == b"best"
    assert sorted(shipped) == ["best.pt", "config.yaml", "last.pt"]
    assert shipped["last.pt"] == ((run / "last.pt").stat().st_size, (run / "last.pt").stat().st_mtime_ns)
    assert fs.modified(f"{root}/config.yaml") == config_put_at  # unchanged: not put again


def test_upload_folder_forgets_files_deleted_locally(destination, tmp_path):
    run = tmp_path / "run"
    _write(run / "a.pt", b"a")
    old = _write(run / "b.pt", b"b")
    shipped = artifacts.upload_folder(run, destination)
    old.unlink()
    assert sorted(artifacts.upload_folder(run, destination, shipped)) == ["a.pt"]


def test_download_folder_round_trip(destination, tmp_path):
    run = tmp_path / "run"
    files = {"checkpoints/last.pt": os.urandom(300_000), "dynamics/loss.npy": b"array", "plot.png": b"png"}
    for name, data in files.items():
        _write(run / name, data)
    artifacts.upload_folder(run, destination)

    copy = tmp_path / "copy"
    assert artifacts.download_folder(destination, copy) == 3
    assert {name: (copy / name).read_bytes() for name in files} == files
    assert sorted(p.relative_to(copy).as_posix() for p in copy.rglob("*") if p.is_file()) == sorted(files)

    assert artifacts.download_folder(destination, copy) == 0  # every local copy is current

    time.sleep(1.1)  # S3 keeps modification times in whole seconds
    artifacts.put_file(_write(tmp_path / "new", b"ARRAY"), artifacts.join(destination, "dynamics/loss.npy"))
    assert artifacts.download_folder(destination, copy) == 1  # same size, but a newer file
    assert (copy / "dynamics" / "loss.npy").read_bytes() == b"ARRAY"


def test_download_folder_skips_a_temporary_still_being_uploaded(s3_bucket, tmp_path):
    artifacts.put_file(_write(tmp_path / "a", b"done"), artifacts.join(s3_bucket, "a.pt"))
    in_flight = temporary_beside("b.pt").name
    artifacts.put_file(_write(tmp_path / "b", b"half"), artifacts.join(s3_bucket, in_flight))
    assert artifacts.download_folder(s3_bucket, tmp_path / "copy") == 1
    assert [p.name for p in (tmp_path / "copy").iterdir()] == ["a.pt"]


def test_download_folder_rejects_names_that_leave_the_folder(s3_bucket, tmp_path):
    import boto3

    bucket, _, prefix = s3_bucket.removeprefix("s3://").partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/ok.pt", Body=b"fine")
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/../../escape.pt", Body=b"evil")

    with pytest.raises(ValueError, match=r"\.\./\.\./escape\.pt"):
        artifacts.download_folder(s3_bucket, tmp_path / "deep" / "copy")
    assert not (tmp_path / "escape.pt").exists()
    assert not (tmp_path / "deep" / "copy").exists()  # refused before anything was copied


def test_remove_folder(destination, tmp_path):
    artifacts.upload_folder(_write(tmp_path / "run" / "a" / "b.pt", b"x").parent.parent, destination)
    assert artifacts.exists(artifacts.join(destination, "a", "b.pt"))
    artifacts.remove_folder(destination)
    assert not artifacts.exists(artifacts.join(destination, "a", "b.pt"))
    artifacts.remove_folder(destination)  # already gone: not an error


def test_missing_driver_names_what_to_install():
    pytest.importorskip("s3fs")  # this test needs a protocol whose driver is absent; gcsfs is not in [dev]
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    with pytest.raises(ImportError, match="gcsfs"):
        artifacts.filesystem("gs://bucket/runs")


def test_missing_s3_driver_names_the_extra():
    """In a fresh interpreter where s3fs cannot be imported, as on a machine without ``epochal[s3]``."""
    script = (
        "import sys; sys.modules['s3fs'] = None\n"
        "from epochal.store import artifacts\n"
        "try:\n"
        "    artifacts.filesystem('s3://bucket/runs')\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert "pip install 'epochal[s3]'" in result.stdout


def test_unknown_protocol():
    with pytest.raises(ValueError, match=r"'nosuch://bucket/runs'.*folder or an fsspec URL"):
        artifacts.filesystem("nosuch://bucket/runs")


def test_a_file_url_is_a_local_folder(tmp_path):
    url = (tmp_path / "artifacts").as_uri()
    artifacts.upload_folder(_write(tmp_path / "run" / "a.pt", b"a").parent, url)
    assert (tmp_path / "artifacts" / "a.pt").read_bytes() == b"a"
    assert artifacts.download_folder(url, tmp_path / "copy") == 1


def test_a_missing_bucket_is_an_error_not_created(s3_bucket, tmp_path):
    import boto3

    missing = "s3://epochal-no-such-bucket/runs/a.pt"
    with pytest.raises(FileNotFoundError):
        artifacts.put_file(_write(tmp_path / "a", b"a"), missing)
    assert "epochal-no-such-bucket" not in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
