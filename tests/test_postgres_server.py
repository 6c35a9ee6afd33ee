"""The test suite's own PostgreSQL server: reachable, password-checked, crash-safe, one database per test."""

import psycopg
import pytest
from postgres_server import PASSWORD


def test_round_trips_a_value(postgres_url):
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (x text)")
        conn.execute("INSERT INTO t VALUES (%s)", ("héllo",))
        assert conn.execute("SELECT x FROM t").fetchone() == ("héllo",)


def test_wrong_password_is_refused(postgres_server):
    with psycopg.connect(postgres_server.url(password=PASSWORD)) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("epochal",)
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(postgres_server.url(password="wrong"), connect_timeout=10)


def test_committed_data_survives_a_crash(postgres_server, postgres_url):
    port = postgres_server.port
    with psycopg.connect(postgres_url) as conn:
        conn.execute("CREATE TABLE t (x int)")
        conn.execute("INSERT INTO t VALUES (42)")
    # Unclosed on purpose: the crash must not wait for it.
    open_conn = psycopg.connect(postgres_url)
    open_conn.execute("SELECT 1")

    postgres_server.stop("immediate")
    assert not postgres_server.running
    postgres_server.start()
    assert postgres_server.running
    assert postgres_server.port == port

    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT x FROM t").fetchall() == [(42,)]
    open_conn.close()


_SEEN_DATABASES: set[str] = set()


@pytest.mark.parametrize("turn", [1, 2])
def test_each_test_gets_its_own_fresh_database(postgres_url, turn):
    name = postgres_url.rsplit("/", 1)[1]
    assert name not in _SEEN_DATABASES
    _SEEN_DATABASES.add(name)
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (name,)
        # The other turn left a table in its own database, never in this one.
        assert conn.execute("SELECT to_regclass('left_behind')").fetchone() == (None,)
        conn.execute("CREATE TABLE left_behind (turn int)")
