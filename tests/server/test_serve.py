"""`epochal ui` as a user starts it: a real server on a port, the URL it prints, the token it makes."""

import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from sample_runs import make_runs

import epochal


def _start(store_dir, *args):
    process = subprocess.Popen(
        [sys.executable, "-m", "epochal.cli", "ui", "--store", str(store_dir), "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"(http://\S+)", line)
    if not match:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()}")
    return process, match.group(1)


def _get(url, headers=None):
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture
def served_store(store_dir):
    with epochal.Store(store_dir) as store:
        make_runs(store)
    return store_dir


def test_ui_serves_the_api_on_loopback(served_store):
    process, url = _start(served_store)
    try:
        assert url.startswith("http://127.0.0.1:") and "token" not in url
        status, body = _get(url + "api/runs")
        assert status == 200 and len(json.loads(body)["runs"]) == 3
        status, _ = _get(url + "api/openapi.json")
        assert status == 200
    finally:
        process.terminate()
        process.wait(10)


def test_ui_off_loopback_makes_a_token_and_refuses_calls_without_it(served_store):
    process, url = _start(served_store, "--host", "0.0.0.0")
    try:
        token = re.search(r"token=([\w-]+)", url).group(1)
        port = re.search(r":(\d+)/", url).group(1)
        base = f"http://127.0.0.1:{port}/"
        assert _get(base + "api/runs")[0] == 401
        assert _get(base + "api/runs", {"Authorization": f"Bearer {token}"})[0] == 200
        assert _get(base + f"api/runs?token={token}")[0] == 200
    finally:
        process.terminate()
        process.wait(10)


def test_ui_on_a_busy_port_says_so(served_store):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "epochal.cli", "ui", "--store", str(served_store), "--port", str(port)],
            capture_output=True, text=True, timeout=30,
        )
    assert result.returncode == 2 and f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_ui_on_a_missing_store_changes_nothing(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "epochal.cli", "ui", "--store", str(tmp_path / "nothing"), "--port", "0"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2 and "no store" in result.stderr and not (tmp_path / "nothing").exists()


def test_ui_refuses_a_short_token(served_store):
    result = subprocess.run(
        [sys.executable, "-m", "epochal.cli", "ui", "--store", str(served_store), "--token", "abc"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2 and "8 characters" in result.stderr


def test_the_ui_page_is_served_or_explains_how_to_build_it(served_store):
    process, url = _start(served_store)
    try:
        status, body = _get(url)
        assert status == 200 and body.lower().startswith(b"<!doctype html")
    finally:
        process.terminate()
        process.wait(10)
