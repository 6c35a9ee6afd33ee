"""An S3-compatible server for tests: moto in server mode on 127.0.0.1 and a port the OS picks.

The tests talk to it over HTTP through s3fs and botocore, as they would to MinIO or AWS, so no
part of the S3 path is mocked. Tests that use it skip when ``moto[server]`` or s3fs is missing.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """The URL of a moto S3 server that runs for the whole test session."""
    pytest.importorskip("s3fs")
    server_module = pytest.importorskip("moto.server")
    # port 0: the OS picks a free one, which the server then reports
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
