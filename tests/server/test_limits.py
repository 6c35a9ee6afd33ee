"""A hostile client against a real server on a loopback port: big bodies, slow headers, idle connections."""

import json
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from sample_runs import make_runs

import epochal

TOKEN = "correct-horse-battery"

SERVE = """
import sys
from epochal import Store
from epochal.server.connections import ConnectionLimits
from epochal.server.serve import serve
serve(Store(sys.argv[1], create=False), port=0, token=sys.argv[2] or None,
      limits=ConnectionLimits(header_timeout=float(sys.argv[3]), keep_alive=1, max_connections=int(sys.argv[4])))
"""


@pytest.fixture
def served_store(store_dir):
    with epochal.Store(store_dir) as store:
        make_runs(store)
    return store_dir


def _serve(store_dir, *, token="", header_timeout=60.0, max_connections=200):
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(store_dir), token, str(header_timeout), str(max_connections)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
    if not match:
        process.kill()
        raise AssertionError(f"no URL printed: {line!r} {process.stderr.read()}")
    return process, int(match.group(1))


@pytest.fixture
def server(served_store, request):
    process, port = _serve(served_store, **getattr(request, "param", {}))
    yield process, port
    process.terminate()
    process.wait(10)


def _rss(process) -> int:
    with open(f"/proc/{process.pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024


def _connect(port, timeout=5.0):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return sock


def _status(reply: bytes) -> int:
    return int(reply.split(b" ", 2)[1])


def _reply(sock) -> bytes:
    """A whole reply (headers and the body its Content-Length gives)."""
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            block = sock.recv(65536)
            if not block:
                break
            data += block
    except ConnectionResetError:
        pass
    return data


def _length(data: bytes) -> int:
    match = re.search(rb"content-length: (\d+)", data, re.IGNORECASE)
    return int(match.group(1)) if match else 0


def _send_body_while_reading(port, head: bytes, total: int):
    """Send ``head`` then up to ``total`` body bytes from a thread; return (reply, bytes sent by then, seconds)."""
    sock = _connect(port, timeout=10)
    sent = [0]

    def push():
        block = b"x" * (1 << 20)
        try:
            sock.sendall(head)
            while sent[0] < total:
                sent[0] += sock.send(block[: total - sent[0]])
        except OSError:
            pass  # the server closed the connection: what it should do

    started = time.monotonic()
    pusher = threading.Thread(target=push, daemon=True)
    pusher.start()
    reply = _reply(sock)
    answered_at, seconds = sent[0], time.monotonic() - started
    pusher.join(10)
    sock.close()
    return reply, answered_at, seconds


needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the server's memory from /proc")


@needs_proc
@pytest.mark.parametrize("server, origin, status, says", [
    ({"token": TOKEN}, False, 401, b"token"),  # a stranger: refused before the body is read
    ({}, True, 413, b"1,048,576"),  # allowed, but over the cap
], indirect=["server"], ids=["without-token", "over-the-cap"])
def test_a_big_body_is_refused_before_it_is_read(server, origin, status, says):
    process, port = server
    before = _rss(process)
    total = 300 * 2**20
    head = (f"PATCH /api/runs/alpha HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            + (f"Origin: http://127.0.0.1:{port}\r\n" if origin else "")
            + f"Content-Type: application/json\r\nContent-Length: {total}\r\n\r\n").encode()
    reply, sent, seconds = _send_body_while_reading(port, head, total)
    assert _status(reply) == status and says in reply
    assert sent < total and seconds < 5
    assert _rss(process) - before < 30 * 2**20


@needs_proc
def test_a_chunked_body_is_cut_off_at_the_cap(server):
    process, port = server
    before = _rss(process)
    head = (f"PATCH /api/runs/alpha HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://127.0.0.1:{port}\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode()
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"  # 1 MiB a chunk, endless
    reply, sent, seconds = _send_body_while_reading(port, head + chunk * 300, len(head) + 300 * len(chunk))
    assert _status(reply) == 413
    assert seconds < 5
    assert _rss(process) - before < 30 * 2**20


def test_a_change_within_the_cap_still_works_through_a_real_server(server, served_store):
    _, port = server
    notes = "é" * 90_000  # 540 kB as JSON escapes it
    body = json.dumps({"notes": notes}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/runs/beta", data=body, method="PATCH",
        headers={"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200
    with epochal.Store(served_store) as store:
        assert store.run("beta").description == notes


@pytest.mark.parametrize("server", [{"header_timeout": 1.5}], indirect=True)
def test_silent_and_slow_header_connections_are_closed_after_the_header_timeout(server):
    _, port = server
    silent = [_connect(port) for _ in range(20)]
    slow = [_connect(port) for _ in range(20)]
    for sock in slow:
        sock.sendall(b"GET /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never ends its headers
    time.sleep(0.5)
    for sock in slow:
        sock.sendall(b"X-Slow: 1\r\n")  # still sending, a byte now and then
    deadline = time.monotonic() + 10
    for sock in silent + slow:
        sock.settimeout(max(0.1, deadline - time.monotonic()))
        assert sock.recv(1024) == b"", "the server kept a connection that sent no whole request"
        sock.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/store", timeout=5) as response:
        assert response.status == 200


@pytest.mark.parametrize("server", [{"max_connections": 50}], indirect=True)
def test_the_server_stays_reachable_past_its_connection_limit(server):
    _, port = server
    idle = [_connect(port) for _ in range(300)]
    try:
        started = time.monotonic()
        for _ in range(5):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/store", timeout=5) as response:
                assert response.status == 200
        assert time.monotonic() - started < 5
        closed = 0
        for sock in idle:
            sock.settimeout(0.01)
            try:
                closed += sock.recv(1) == b""
            except (TimeoutError, OSError):
                pass
        assert closed >= 250  # the longest-waiting ones made room for the rest
    finally:
        for sock in idle:
            sock.close()


def test_a_kept_alive_connection_is_closed_when_idle(server):
    _, port = server
    sock = _connect(port)
    sock.sendall(f"GET /api/store HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    assert _status(_reply(sock)) == 200
    started = time.monotonic()
    sock.settimeout(10)
    while sock.recv(65536):
        pass
    assert time.monotonic() - started < 5
    sock.close()


def test_a_body_that_does_not_arrive_in_time_is_408(filled_store):
    """The guard gives a body ``body_timeout`` seconds, then answers 408 and closes the connection."""
    import asyncio

    from epochal.server import create_app
    from epochal.server.guard import RequestGuard

    store, _ = filled_store
    app = create_app(store, static_dir=None)
    guard = RequestGuard(app, routes=app.state.api_paths, body_timeout=0.3)
    scope = {"type": "http", "method": "PATCH", "path": "/api/runs/alpha", "raw_path": b"/api/runs/alpha",
             "query_string": b"", "root_path": "", "scheme": "http", "server": ("127.0.0.1", 80), "app": app,
             "headers": [(b"host", b"127.0.0.1"), (b"origin", b"http://127.0.0.1"), (b"content-length", b"20")]}
    sent = []

    async def trickle():
        await asyncio.sleep(0.1)
        return {"type": "http.request", "body": b"{", "more_body": True}

    async def send(message):
        sent.append(message)

    started = time.monotonic()
    # In a thread of its own: an earlier test of the session may leave an event loop running in this one.
    worker = threading.Thread(target=asyncio.run, args=(guard(scope, trickle, send),))
    worker.start()
    worker.join(timeout=30)
    assert sent[0]["status"] == 408 and (b"connection", b"close") in sent[0]["headers"]
    assert time.monotonic() - started < 2
