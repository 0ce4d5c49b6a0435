"""Several instances share the per-client cap, the failure budget and the stream board (Redis).

Two apps on real waitress servers in this process stand for two instances behind a balancer;
they share the machine's Redis (127.0.0.1:6379) under a key prefix of the test's own, removed at
the end, so tests never meet another's keys. Then what happens when Redis fails: a port where
nothing listens, and a socket that accepts and never answers — each instance's own limits, no
500, one warning, the fallback counted.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
import redis

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.server.admission import CLIENT_LIMIT, Admission, Rejected
from tablestream.shared import ClientLeases, SharedStore
from tablestream.shared import store as store_module
from tablestream.testing import httpraw
from tablestream.testing.metricsread import value
from tablestream.testing.process import free_port

REDIS = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix() -> Iterator[str]:
    """A key prefix no other test uses; every key under it removed afterwards."""
    name = f"tstest-{uuid.uuid4().hex[:12]}:"
    yield name
    client = redis.Redis.from_url(REDIS)
    keys = list(client.scan_iter(match=name + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture
def hung_redis() -> Iterator[str]:
    """A Redis URL whose server accepts connections and never answers a byte."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    listener.close()


class FreezingRedis:
    """A TCP relay to the real Redis that can stop answering (``frozen``) and start again: what
    a Redis stuck in a long command, or behind a dead network path, looks like to a client."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"redis://127.0.0.1:{self.listener.getsockname()[1]}/0"
        self.frozen = threading.Event()
        self._stop = threading.Event()
        self._sockets: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client = self.listener.accept()[0]
            except TimeoutError:
                continue
            upstream = socket.create_connection(("127.0.0.1", 6379))
            self._sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                self._threads.append(thread)
                thread.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(0.05)
        while not self._stop.is_set():
            if self.frozen.is_set():
                time.sleep(0.01)  # what arrives waits, unanswered
                continue
            try:
                data = src.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self.frozen.is_set() and not self._stop.is_set():
                time.sleep(0.01)  # read just as it froze: held too
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(5)
        for sock in [*self._sockets, self.listener]:
            sock.close()


def _open_stream(url: str, headers: dict[str, str] | None = None) -> urllib.request.addinfourl:
    """A long page's response, headers read, body not: its stream holds a slot."""
    request = urllib.request.Request(url, headers=headers or {})
    response = urllib.request.urlopen(request, timeout=30)
    response.read(4000)
    return response


def _store(prefix: str, url: str = REDIS) -> SharedStore:
    return SharedStore(url, prefix, 0.5)


def test_two_instances_share_one_clients_cap_and_a_lease_given_back_is_free_again(prefix):
    a = Admission(8, per_client=2, leases=ClientLeases(_store(prefix)))
    b = Admission(8, per_client=2, leases=ClientLeases(_store(prefix)))
    first, second = a.admit("10.0.0.7"), b.admit("10.0.0.7")
    with pytest.raises(Rejected) as refused:
        b.admit("10.0.0.7")
    assert refused.value.reason == CLIENT_LIMIT and "across" in refused.value.message
    with pytest.raises(Rejected):
        a.admit("10.0.0.7")
    assert a.in_use == 1 and b.in_use == 1  # a refused stream holds no local slot either
    b.admit("10.0.0.8").release()  # another client is not touched
    first.release()
    first.release()  # given back once, however often asked
    third = b.admit("10.0.0.7")
    with pytest.raises(Rejected):
        a.admit("10.0.0.7")
    second.release()
    third.release()
    assert redis.Redis.from_url(REDIS).zcard(f"{prefix}cap:10.0.0.7") == 0


def test_a_crashed_instances_leases_expire_and_free_the_clients_cap(prefix):
    crashed = ClientLeases(_store(prefix), lease_s=0.3)
    assert crashed.take("10.0.0.9", 2) and crashed.take("10.0.0.9", 2)
    live = ClientLeases(_store(prefix), lease_s=0.3)
    assert live.take("10.0.0.9", 2) is None  # the cap is spent across the instances
    time.sleep(0.4)  # never renewed, never given back: the crashed instance is gone
    lease = live.take("10.0.0.9", 2)
    assert lease and live.take("10.0.0.9", 2)
    client = redis.Redis.from_url(REDIS)
    assert 0 < client.pttl(f"{prefix}cap:10.0.0.9") <= 300


def _two(thread_server, settings_for, prefix: str, **overrides: str):
    settings = settings_for(redis_url=REDIS, redis_prefix=prefix, gzip="false", **overrides)
    return thread_server(create_app(settings)), thread_server(create_app(settings))


def test_a_client_at_its_cap_on_one_instance_is_refused_by_the_other(
    thread_server, settings_for, prefix
):
    a, b = _two(thread_server, settings_for, prefix, streams_per_client="2")
    held = [_open_stream(f"{a.url}/tables/synthetic"), _open_stream(f"{a.url}/tables/synthetic")]
    try:
        refused = httpraw.get(f"{b.url}/tables/synthetic?limit=2000")
        assert refused.status == 429, refused.body[:300]
        assert refused.headers.get("retry-after")
        assert b"across this service&#39;s instances" in refused.body
        assert (
            value(f"{b.url}/metrics", "tablestream_streams_rejected_total", reason="client_limit")
            == 1
        )
        assert httpraw.get(f"{b.url}/tables/synthetic.csv?limit=2000").status == 429
    finally:
        for response in held:
            response.close()
    # The streams' ends give the leases back: the client may stream again, on either instance.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if httpraw.get(f"{b.url}/tables/synthetic.csv?limit=2000").status == 200:
            break
        time.sleep(0.1)
    else:
        pytest.fail("the leases of the closed streams were never given back")
    assert (
        value(f"{a.url}/metrics", "tablestream_shared_store_errors_total", what="client_cap") == 0
    )


def test_the_failure_budget_is_spent_across_instances(
    thread_server, settings_for, prefix, tmp_path
):
    tokens = str(tmp_path / "tokens")
    good = add_token(tokens, "reader", tables=["*"])
    a, b = _two(
        thread_server, settings_for, prefix, tokens_file=tokens, auth_failures_per_minute="4"
    )
    wrong = {"Authorization": "Bearer ts_" + "x" * 43}
    statuses = [
        httpraw.get(f"{server.url}/tables/synthetic.csv?limit=1", headers=wrong).status
        for server in (a, b, a, b, a, b)
    ]
    assert statuses == [401, 401, 401, 401, 429, 429]  # 4 a minute, wherever they land
    ok = httpraw.get(
        f"{b.url}/tables/synthetic.csv?limit=1", headers={"Authorization": f"Bearer {good}"}
    )
    assert ok.status == 200  # a valid credential is never refused by the budget


def test_a_stream_on_one_instance_is_answered_by_the_other(thread_server, settings_for, prefix):
    a, b = _two(thread_server, settings_for, prefix)
    page = httpraw.get(f"{a.url}/tables/synthetic?limit=1500")
    status_url = re.search(rb'data-status-url="([^"]+)"', page.body).group(1).decode()
    answer = httpraw.get(b.url + status_url)
    assert answer.status == 200, answer.body
    assert b'"outcome": "completed"' in answer.body and b'"rows_sent": 1500' in answer.body
    assert httpraw.get(b.url + status_url + "x").status == 404


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_pages_reports_to_another_instance_hold_its_stream_near_its_parser(
    thread_server, settings_for, prefix
):
    keep = 100_000
    a, b = _two(thread_server, settings_for, prefix, page_rows=str(keep), synthetic_rows="300000")
    response = urllib.request.urlopen(f"{a.url}/tables/synthetic", timeout=30)
    received = [response.read(6000)]
    status_url = re.search(r'data-status-url="([^"]+)"', received[0].decode()).group(1)
    parsed = [0]
    done = threading.Event()
    answers: list[bytes] = []

    def report() -> None:  # every report lands on the instance not serving the stream
        while not done.is_set():
            answer = httpraw.get(f"{b.url}{status_url}?parsed={parsed[0]}")
            answers.append(b"%d %s" % (answer.status, answer.body))
            time.sleep(0.2)

    def read() -> None:
        while piece := response.read1(65536):
            received.append(piece)

    reporter, reader = threading.Thread(target=report), threading.Thread(target=read)
    reporter.start()
    try:
        time.sleep(0.5)
        reader.start()
        held, deadline = -1, time.monotonic() + 20
        while time.monotonic() < deadline and held != (
            now := b"".join(received).count(b"<tr><td>")
        ):
            held = now
            time.sleep(0.7)
        assert keep - 600 <= held <= keep, held  # held near the parser, as on one instance
        parsed[0] = keep
        reader.join(30)
        assert not reader.is_alive()
    finally:
        done.set()
        reporter.join()
        response.close()
    body = b"".join(received)
    assert b"<!--ts-rows" in body and b'data-rows-sent="300000"' in body[-2000:]
    assert answers and all(a.startswith(b"200 ") for a in answers), answers[:3]
    assert b"in_progress" in answers[0]


def _outage_app(settings_for, url: str, tmp_path, **overrides: str):
    tokens = str(tmp_path / "tokens")
    good = add_token(tokens, "reader", tables=["*"])
    settings = settings_for(
        redis_url=url,
        redis_timeout="0.05",
        streams_per_client="1",
        tokens_file=tokens,
        auth_failures_per_minute="2",
        gzip="false",
        **overrides,
    )
    return create_app(settings), {"Authorization": f"Bearer {good}"}


@pytest.mark.parametrize("down", ["nothing_listens", "never_answers"])
def test_a_redis_outage_leaves_each_instance_its_own_limits_never_a_refusal_or_500(
    down, thread_server, settings_for, tmp_path, hung_redis, caplog, monkeypatch
):
    url = hung_redis if down == "never_answers" else f"redis://127.0.0.1:{free_port()}/0"
    monkeypatch.setattr(store_module, "RETRY_S", 0.0)  # every call asks Redis and waits its timeout
    with caplog.at_level(logging.WARNING, logger="tablestream"):
        app, auth = _outage_app(settings_for, url, tmp_path)
        server = thread_server(app)
        started = time.monotonic()
        page = httpraw.get(f"{server.url}/tables/synthetic?limit=500", headers=auth)
        took = time.monotonic() - started
        assert page.status == 200 and page.terminated
        assert took < 1.0, f"a page took {took:.2f} s with Redis {down}"
        status_url = re.search(rb'data-status-url="([^"]+)"', page.body).group(1).decode()
        assert httpraw.get(server.url + status_url, headers=auth).status == 200  # the local board
        held = _open_stream(f"{server.url}/tables/synthetic", auth)
        try:  # the instance's own cap of 1 still holds
            assert httpraw.get(f"{server.url}/tables/synthetic.csv", headers=auth).status == 429
        finally:
            held.close()
        wrong = {"Authorization": "Bearer ts_" + "y" * 43}
        statuses = [
            httpraw.get(f"{server.url}/tables/synthetic.csv", headers=wrong).status
            for _ in range(3)
        ]
        assert statuses == [401, 401, 429]  # the instance's own budget
    warnings = [r for r in caplog.records if "shared store" in r.getMessage()]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert "per instance" in warnings[0].getMessage()
    registry = app.extensions["tablestream"].metrics.registry
    for what in ("client_cap", "board", "budget"):
        counted = registry.get_sample_value("tablestream_shared_store_errors_total", {"what": what})
        assert counted >= 1, what


def test_a_live_instance_keeps_its_leases_past_their_ttl_until_it_gives_them_back(
    prefix, monkeypatch
):
    # Renewals every 0.1 s of a 1 s TTL: only a stall of the keeper's thread of 0.9 s expires
    # the lease (at 0.3 s, a 0.2 s pause of a loaded CI machine did, and the test failed).
    monkeypatch.setattr(store_module, "KEEP_S", 0.1)
    leases = ClientLeases(_store(prefix), lease_s=1.0)
    lease = leases.take("10.0.0.5", 1)
    assert lease
    time.sleep(2.5)  # over twice the TTL: only the keeper's renewals keep it
    assert leases.take("10.0.0.5", 1) is None
    leases.give_back("10.0.0.5", lease)
    assert leases.take("10.0.0.5", 1)


def test_a_take_whose_answer_was_lost_never_holds_the_clients_cap_once_redis_answers(
    prefix, monkeypatch
):
    monkeypatch.setattr(store_module, "KEEP_S", 0.1)
    monkeypatch.setattr(store_module, "RETRY_S", 0.1)
    relay = FreezingRedis()
    try:
        store = SharedStore(relay.url, prefix, timeout=0.05)
        leases = ClientLeases(store)  # the default 30 s lease: an orphan would outlive the test
        relay.frozen.set()
        assert leases.take("10.0.0.7", 1) is store_module.UNAVAILABLE  # sent, never answered
        relay.frozen.clear()  # the relay now delivers the take to Redis, which runs it late
        cap = redis.Redis.from_url(REDIS)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if cap.keys(f"{prefix}revoked:*"):
                break  # the keeper revoked the lease
        else:
            pytest.fail("the unanswered take's lease was never revoked")
        time.sleep(0.3)  # whichever ran first, the take or the revocation
        assert cap.zcard(f"{prefix}cap:10.0.0.7") == 0
        assert leases.take("10.0.0.7", 1)  # the client's one stream is free
    finally:
        relay.close()


def test_a_late_take_of_a_revoked_lease_refuses_itself(prefix):
    leases = ClientLeases(_store(prefix))
    keys = [f"{prefix}cap:10.0.0.8", f"{prefix}revoked:late"]
    pipe = leases._store.redis.pipeline()
    leases._revoke(pipe, keys, "late")
    pipe.execute()  # the revocation arrived first ...
    assert leases._take(keys=keys, args=[1, "late", 30000]) == 0  # ... the take, later, adds none
    assert redis.Redis.from_url(REDIS).zcard(keys[0]) == 0


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_redis_that_stops_answering_mid_service_leaves_local_limits_and_then_shares_again(
    thread_server, settings_for, prefix, caplog, monkeypatch
):
    monkeypatch.setattr(store_module, "KEEP_S", 0.2)  # the keeper's retry of a failed give-back
    monkeypatch.setattr(store_module, "RETRY_S", 0.2)  # the pause after a failure
    relay = FreezingRedis()
    try:
        settings = settings_for(
            redis_url=relay.url,
            redis_prefix=prefix,
            redis_timeout="0.05",
            streams_per_client="1",
            gzip="false",
        )
        a, b = thread_server(create_app(settings)), thread_server(create_app(settings))
        held = _open_stream(f"{a.url}/tables/synthetic")
        assert httpraw.get(f"{b.url}/tables/synthetic.csv?limit=2000").status == 429  # shared
        relay.frozen.set()
        with caplog.at_level(logging.WARNING, logger="tablestream"):
            started = time.monotonic()
            during = httpraw.get(f"{b.url}/tables/synthetic.csv?limit=2000")
            took = time.monotonic() - started
            held.close()  # its give-back cannot reach Redis now
            time.sleep(0.3)
        assert during.status == 200 and during.terminated, during.body[-700:]  # B own cap
        assert took < 1.0, f"a stream took {took:.2f} s with Redis not answering"
        # One warning per instance (A's give-back, B's admission), however many calls failed.
        assert sum("shared store" in r.getMessage() for r in caplog.records) == 2
        relay.frozen.clear()
        # Redis answers again: the lease of the stream that ended during the outage is removed
        # by the keeper, and the cap is shared again.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if redis.Redis.from_url(REDIS).zcard(f"{prefix}cap:127.0.0.1") == 0:
                break
        else:
            pytest.fail("the lease given back during the outage was never removed")
        time.sleep(0.3)  # past B's pause after its failure: it asks Redis again
        again = _open_stream(f"{b.url}/tables/synthetic")
        try:
            refused = httpraw.get(f"{a.url}/tables/synthetic.csv?limit=2000")
        finally:
            again.close()
        assert refused.status == 429 and b"across" in refused.body, "the cap is not shared again"
    finally:
        relay.close()


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_two_real_servers_one_with_processes_share_the_cap_and_the_board(process_server, prefix):
    env = {
        "TABLESTREAM_DB": "",
        "TABLESTREAM_SYNTHETIC_ROWS": "2000000",
        "TABLESTREAM_GZIP": "false",
        "TABLESTREAM_STREAMS_PER_CLIENT": "1",
        "TABLESTREAM_REDIS_URL": REDIS,
        "TABLESTREAM_REDIS_PREFIX": prefix,
    }
    a = process_server(("--processes", "2"), **env)
    b = process_server(**env)
    held = urllib.request.urlopen(f"{a.url}/tables/synthetic", timeout=30)
    try:
        head = held.read(6000).decode()
        status_url = re.search(r'data-status-url="([^"]+)"', head).group(1)
        refused = httpraw.get(f"{b.url}/tables/synthetic.csv?limit=2000")
        assert refused.status == 429 and b"across" in refused.body
        answer = httpraw.get(b.url + status_url)
        assert answer.status == 200 and b'"outcome": "in_progress"' in answer.body, answer.body
    finally:
        held.close()
    for server in (a, b):
        assert value(f"{server.url}/metrics", "tablestream_shared_store_errors_total") == 0
