import uuid

import pytest
from moto_server import moto_endpoint  # noqa: F401 - the session's S3 server, used by s3_bucket

import epochal


@pytest.fixture(params=["sqlite", "memory", "postgres"])
def location(request, tmp_path):
    """A fresh store location of each backend: the same tests prove that all implement the interface.
    PostgreSQL's is a new database on the session's real server."""
    if request.param == "postgres":
        return request.getfixturevalue("postgres_url")
    return tmp_path / "store" if request.param == "sqlite" else f"memory://{tmp_path}"


@pytest.fixture(params=["sqlite", "memory"])
def local_store(request, tmp_path):
    """An open store that runs write to directly (not through a team store's spool): for tests of what a
    run's writer does to its store the moment it writes, and of run folders inside the store."""
    with epochal.Store(tmp_path / "store" if request.param == "sqlite" else f"memory://{tmp_path}") as store:
        yield store


@pytest.fixture
def store(location):
    """An open store of each backend."""
    with epochal.Store(location) as store:
        yield store


@pytest.fixture
def s3_bucket(moto_endpoint, monkeypatch, tmp_path):  # noqa: F811 - the fixture imported above
    """``s3://BUCKET/prefix`` in a fresh bucket on the session's moto server.

    The server is chosen the way a user picks an S3-compatible server, through ``AWS_ENDPOINT_URL``
    (no code), and each test gets new s3fs instances: fsspec's instance cache is cleared before and after.
    """
    import boto3
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))  # the user's profiles stay out
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    bucket = f"epochal-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    s3fs.S3FileSystem.clear_instance_cache()
    yield f"s3://{bucket}/runs"
    s3fs.S3FileSystem.clear_instance_cache()
