"""Stream slots: a stream gets one or an immediate refusal that says why; slots come back.

The last test walks every way a stream request ends on a real waitress server with one slot,
because a slot that one path forgets to give back refuses every stream after it.
"""

import http.client
import socket
import time
from urllib.parse import urlsplit

import pytest

from tablestream import create_app
from tablestream.access.tokens import add_token
from tablestream.server.admission import CLIENT_LIMIT, DRAINING, SLOTS_FULL, Admission, Rejected
from tablestream.testing import httpraw

from .faulty import FailingTable, UnopenableTable
from .servers import wait_for


def test_streams_beyond_the_slots_are_refused_and_a_finished_stream_frees_its_slot():
    admission = Admission(slots=2)
    first, _second = admission.admit("a"), admission.admit("b")
    with pytest.raises(Rejected) as refused:
        admission.admit("c")
    assert refused.value.reason == SLOTS_FULL and "2 stream slots" in refused.value.message
    first.finished("completed", 10)
    first.release()  # a second release changes nothing
    assert admission.in_use == 1
    admission.admit("c")
    assert admission.in_use == 2


def test_one_client_cannot_take_more_than_its_share():
    admission = Admission(slots=8, per_client=2)
    admission.admit("10.0.0.1"), admission.admit("10.0.0.1")
    with pytest.raises(Rejected) as refused:
        admission.admit("10.0.0.1")
    assert refused.value.reason == CLIENT_LIMIT
    admission.admit("10.0.0.2")  # another client still gets a slot


def test_a_draining_server_admits_no_new_stream():
    admission = Admission(slots=8)
    admission.draining = True
    with pytest.raises(Rejected) as refused:
        admission.admit("a")
    assert refused.value.reason == DRAINING


def _slot_back(admission: Admission, timeout: float = 5.0) -> bool:
    """Is every slot free again within ``timeout`` (a stream's slot comes back at its close)?"""
    deadline = time.monotonic() + timeout
    while admission.in_use and time.monotonic() < deadline:
        time.sleep(0.01)
    return admission.in_use == 0


def _hang_up_before_the_first_byte(url: str, token: str) -> None:
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        request = f"GET {parts.path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        sock.sendall(request.encode() + b"\r\n")


def _head(url: str, token: str) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.request("HEAD", parts.path, headers={"Authorization": f"Bearer {token}"})
        return connection.getresponse().status
    finally:
        connection.close()


def test_every_refusal_error_and_end_of_a_stream_gives_its_slot_back(
    thread_server, settings_for, tmp_path
):
    tokens = str(tmp_path / "tokens.toml")
    everything = add_token(tokens, "analyst", tables=["*"])
    orders_only = add_token(tokens, "orders-reader", tables=["orders"])
    app = create_app(
        settings_for(tokens_file=tokens, auth_failures_per_minute="0", stream_slots="1")
    )
    runtime = app.extensions["tablestream"]
    runtime.catalog["failing"] = FailingTable(fail_after=50_000)
    runtime.catalog["unopenable"] = UnopenableTable()
    admission = runtime.admission
    admitted = []  # the admission itself, counting the slots it handed out
    take = admission.admit
    admission.admit = lambda client, *expected: admitted.append(client) or take(client, *expected)
    server = thread_server(app)

    def get(path: str, token: str = everything, **options) -> httpraw.RawResponse:
        headers = {"Authorization": f"Bearer {token}"}
        return httpraw.get(server.url + path, headers=headers, timeout=30, **options)

    # Each way a stream request can end, and the status it ends with (None: no status read).
    cases = {
        "bad query (a sort the table cannot bound)": lambda: get("/tables/synthetic?_sort=amount"),
        "missing table": lambda: get("/tables/no-such-table"),
        "grant denied": lambda: get("/tables/customers", orders_only),
        "source failing to open": lambda: get("/tables/unopenable"),
        "HEAD": lambda: _head(server.url + "/tables/orders", everything),
        "client gone before the first byte": lambda: _hang_up_before_the_first_byte(
            server.url + "/tables/synthetic", everything
        ),
        "stream completed": lambda: get("/tables/orders", keep=False),
        "stream cut by its source": lambda: get("/tables/failing", keep=False),
        "client gone mid-stream": lambda: get("/tables/synthetic", max_bytes=256 * 1024),
    }
    expected = {
        "bad query (a sort the table cannot bound)": 400,
        "missing table": 404,
        "grant denied": 404,
        "source failing to open": 503,
        "HEAD": 200,
        "stream completed": 200,
        "stream cut by its source": 200,
        "client gone mid-stream": 200,
    }
    refused_before_a_slot = {"missing table", "grant denied"}
    for what, request in cases.items():
        before = len(admitted)
        answer = request()
        # The request got as far as a slot: the server saw it, so its release can be checked.
        if what not in refused_before_a_slot:
            wait_for(lambda before=before: len(admitted) > before, 5, f"{what}: admission")
        status = answer if isinstance(answer, int) else getattr(answer, "status", None)
        assert status == expected.get(what), what
        assert _slot_back(admission), f"{what}: the slot was not given back"
        if what == "stream completed":
            assert answer.terminated
        if what == "stream cut by its source":
            assert not answer.terminated  # cut visibly, so it really failed mid-stream
    # The one slot is free: a stream still gets it, and holds it while it runs.
    with socket.create_connection(("127.0.0.1", server.server.effective_port)) as sock:
        sock.sendall(
            f"GET /tables/synthetic HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {everything}"
            "\r\n\r\n".encode()
        )
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert admission.in_use == 1
    assert _slot_back(admission)
