"""No password of a URL reaches a message, a log line or a run's record."""

import pytest

from epochal.redaction import redacted


@pytest.mark.parametrize(("text", "shown"), [
    ("postgresql://ana:hunter2@db.example/epochal", "postgresql://ana:***@db.example/epochal"),
    ("postgresql://ana:p@ss:w0rd@db.example:5432/epochal", "postgresql://ana:***@db.example:5432/epochal"),
    ("python train.py --store postgresql://u:secret@h/db --lr 0.1", "python train.py --store postgresql://u:***@h/db --lr 0.1"),
    ("postgresql://ana@db/x?sslmode=require&password=secret", "postgresql://ana@db/x?sslmode=require&password=***"),
    ("s3://bucket/prefix", "s3://bucket/prefix"),
    ("postgresql://ana@db.example/epochal", "postgresql://ana@db.example/epochal"),
    ("/a/local/folder:with@signs", "/a/local/folder:with@signs"),
])
def test_a_urls_password_is_shown_as_stars(text, shown):
    assert redacted(text) == shown
