"""Issue 28's attacks at the service's edge, against a real ``tablestream serve``.

Each test is an attacker's move and fails against the service before issue 28:

- hole 1 (second line of defence): identity headers from the trusted proxy's address are
  believed only with the sign-in proxy's secret, and a policy file without a secret does not
  start (the same attacks through both shipped nginx sites: test_attacks_nginx.py);
- hole 7: a caller that sends another caller's ``X-Request-ID`` neither replaces that stream's
  record nor reads its outcome, with one process or two; a client's id is kept only from the
  trusted proxy;
- hole 8: nothing that depends on the caller may be stored by a shared cache.

docs/production.md's table maps every hole of issue 28 to its test.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tablestream.access.tokens import add_token
from tablestream.testing import ServerProcess, free_port, httpraw
from tablestream.testing.metricsread import value

from .servers import wait_for

SECRET = "f00d" * 16  # the sign-in proxy's secret, as `openssl rand -hex 32` would make one
POLICY = '[groups.analysts]\ntables = ["orders"]\n\n[users."carol@example.com"]\ntables = ["*"]\n'


def _proxy_files(root: Path) -> dict[str, str]:
    """The policy and secret files of a service behind a sign-in proxy on 127.0.0.1."""
    (root / "policy.toml").write_text(POLICY)
    (root / "proxy-secret").write_text(SECRET + "\n")
    return {
        "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
        "TABLESTREAM_AUTH_POLICY_FILE": str(root / "policy.toml"),
        "TABLESTREAM_AUTH_PROXY_SECRET_FILE": str(root / "proxy-secret"),
    }


def _get(url: str, **headers: str) -> httpraw.RawResponse:
    return httpraw.get(url, headers=headers, timeout=30)


# -- hole 1, the service's own line: no secret, no identity


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_identity_headers_from_the_trusted_proxy_without_the_proxy_secret_are_ignored(
    process_server, tmp_path, demo_db
):
    metrics_port = free_port()
    server = process_server(
        TABLESTREAM_DB=str(demo_db),
        TABLESTREAM_METRICS_PORT=str(metrics_port),
        **_proxy_files(tmp_path),
    )
    carol = {"X-Forwarded-User": "carol@example.com", "X-Forwarded-Groups": "analysts"}
    url = server.url + "/tables/customers.csv?limit=3"
    # This test runs on 127.0.0.1, the trusted proxy's address: only the secret tells the
    # sign-in site from the plain one, or from any program on the proxy's host.
    for proof in (
        {},
        {"X-Tablestream-Proxy-Secret": "guess"},
        {"X-Tablestream-Proxy-Secret": SECRET[:-1]},
    ):
        refused = _get(url, **carol, **proof)
        assert refused.status == 401, proof
        assert b"signed_up" not in refused.body
    ignored = value(
        f"http://127.0.0.1:{metrics_port}/metrics",
        "tablestream_auth_identity_headers_ignored_total",
    )
    assert ignored == 3
    signed_in = _get(url, **carol, **{"X-Tablestream-Proxy-Secret": SECRET})
    assert signed_in.status == 200 and signed_in.text.startswith("id,name,")
    server.stop()
    assert SECRET not in server.log_path.read_text(errors="replace")


@pytest.mark.parametrize("secret", [None, "short", "has a space in it " * 3])
def test_a_policy_file_without_a_usable_proxy_secret_is_refused_at_start(tmp_path, secret):
    env = _proxy_files(tmp_path)
    if secret is None:
        del env["TABLESTREAM_AUTH_PROXY_SECRET_FILE"]
        expected = "TABLESTREAM_AUTH_PROXY_SECRET_FILE is empty"
    else:
        (tmp_path / "proxy-secret").write_text(secret)
        expected = "does not hold a usable secret"
    env |= {
        "TABLESTREAM_DB": "",
        "TABLESTREAM_HOST": "127.0.0.1",
        "TABLESTREAM_PORT": str(free_port()),
    }
    done = subprocess.run(
        [sys.executable, "-m", "tablestream", "serve"],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "configuration error" in done.stderr and expected in done.stderr
    if secret is not None:
        assert secret not in done.stderr  # the file is named, its content never shown


# -- hole 7: one caller's stream record is its own


@contextlib.contextmanager
def _stream_in_progress(
    url: str, path: str, headers: dict[str, str]
) -> Iterator[http.client.HTTPResponse]:
    """A GET whose body is read only when the block reads it (the stream runs meanwhile)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        assert response.status == 200
        yield response
    finally:
        conn.close()


def _status(server: ServerProcess, request_id: str, token: str) -> tuple[int, dict]:
    answer = _get(f"{server.url}/streams/{request_id}", Authorization=f"Bearer {token}")
    return answer.status, json.loads(answer.body)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_stream_record_cannot_be_taken_over_with_the_same_request_id(
    process_server, tmp_path, processes
):
    tokens = str(tmp_path / "tokens.toml")
    victim = add_token(tokens, "victim", tables=["*"])
    attacker = add_token(tokens, "attacker", tables=["*"])
    # Behind a proxy that passes clients' X-Request-IDs on (the test is on its address): the
    # attacker may choose any id, and chooses the victim's.
    server = process_server(
        TABLESTREAM_DB="",
        TABLESTREAM_TOKENS_FILE=tokens,
        TABLESTREAM_TRUSTED_PROXY="127.0.0.1",
        TABLESTREAM_PROCESSES=processes,
    )
    same = {"X-Request-ID": "victim-3"}
    with _stream_in_progress(
        server.url,
        "/tables/synthetic.csv?limit=200000",
        {**same, "Authorization": f"Bearer {victim}"},
    ) as stream:
        first = stream.read(4096)
        assert first.startswith(b"id,")
        # While the victim's stream runs, the attacker starts a short one under the same id.
        theirs = _get(
            server.url + "/tables/synthetic.csv?limit=5", **same, Authorization=f"Bearer {attacker}"
        )
        assert theirs.status == 200 and theirs.headers["x-request-id"] == "victim-3"
        assert _status(server, "victim-3", victim) == (
            200,
            {
                "request_id": "victim-3",
                "table": "synthetic",
                "outcome": "in_progress",
                "rows_sent": 0,
            },
        )
        rest = stream.read()
    assert (first + rest).count(b"\n") == 200_001
    # The victim's record is the victim's, and ends as the victim's stream ended ...
    assert wait_for(
        lambda: _status(server, "victim-3", victim)[1].get("outcome") == "completed",
        10,
        "the victim's outcome",
    )
    assert _status(server, "victim-3", victim)[1]["rows_sent"] == 200_000
    # ... and the attacker's says only what the attacker's own stream did.
    assert _status(server, "victim-3", attacker) == (
        200,
        {"request_id": "victim-3", "table": "synthetic", "outcome": "completed", "rows_sent": 5},
    )


def test_a_request_id_from_an_untrusted_peer_is_replaced(process_server):
    server = process_server(TABLESTREAM_DB="", TABLESTREAM_TRUSTED_PROXY="127.0.0.1")
    port = int(server.url.rsplit(":", 1)[1])

    def page_from(address: str) -> tuple[str, bytes]:
        conn = http.client.HTTPConnection(
            "127.0.0.1", port, timeout=10, source_address=(address, 0)
        )
        try:
            conn.request("GET", "/tables/synthetic?limit=3", headers={"X-Request-ID": "victim-3"})
            response = conn.getresponse()
            return response.getheader("X-Request-ID", ""), response.read()
        finally:
            conn.close()

    # A client that reaches the port itself (127.0.0.2) gets an id of the service's choosing.
    chosen, page = page_from("127.0.0.2")
    assert re.fullmatch(r"[0-9a-f]{32}", chosen), chosen
    assert b"victim-3" not in page and f'data-status-url="/streams/{chosen}"'.encode() in page
    # The trusted proxy (nginx, which sends its own $request_id) is believed.
    assert page_from("127.0.0.1")[0] == "victim-3"


# -- hole 8: nothing per caller in a shared cache


@pytest.fixture(scope="module")
def caller_dependent(tmp_path_factory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    """A server with tokens, and a failure budget of one, so that every refusal can be seen."""
    root = tmp_path_factory.mktemp("private")
    path = str(root / "tokens.toml")
    made = {
        "reader": add_token(path, "reader", tables=["synthetic"]),
        "ops": add_token(path, "ops", tables=[], scopes=["metrics"]),
    }
    server = ServerProcess(
        {
            "TABLESTREAM_DB": "",
            "TABLESTREAM_TOKENS_FILE": path,
            "TABLESTREAM_AUTH_FAILURES_PER_MINUTE": "1",
        },
        root / "server.log",
    )
    yield server, made
    server.stop()


# (what, path, token, status, Cache-Control); in this order: the refusals that spend the failure
# budget come last ("metrics port" is the separate port's /metrics, "{id}" a stream of the caller)
RESPONSES = [
    ("index", "/", "reader", 200, "private, no-store"),
    ("table page", "/tables/synthetic?limit=3", "reader", 200, "private, no-store"),
    ("table csv", "/tables/synthetic.csv?limit=3", "reader", 200, "private, no-store"),
    ("description", "/tables/synthetic.json", "reader", 200, "private, no-cache"),
    ("400", "/tables/synthetic?limit=abc", "reader", 400, "private, no-store"),
    ("403", "/metrics", "reader", 403, "private, no-store"),
    ("404", "/tables/nope", "reader", 404, "private, no-store"),
    ("metrics", "/metrics", "ops", 200, "private, no-store"),
    ("metrics port", "metrics port", None, 200, "private, no-store"),
    ("readyz", "/readyz", "reader", 200, "private, no-store"),
    ("stream status", "/streams/{id}", "reader", 200, "private, no-store"),
    ("401", "/", None, 401, "private, no-store"),
    ("429", "/", "bad", 429, "private, no-store"),  # the 2nd bad token a minute (budget: one)
]


@pytest.mark.parametrize(
    ("path", "token", "status", "cache_control"),
    [r[1:] for r in RESPONSES],
    ids=[r[0] for r in RESPONSES],
)
def test_every_caller_dependent_response_is_private_and_never_stored(
    caller_dependent, process_server, path, token, status, cache_control
):
    server, made = caller_dependent
    made = {**made, "bad": "tst_not-a-token"}
    headers = {"Authorization": f"Bearer {made[token]}"} if token else {}
    url = server.url + path
    if path == "metrics port":  # a server of its own: /metrics is then off the public port
        port = free_port()
        process_server(TABLESTREAM_DB="", TABLESTREAM_METRICS_PORT=str(port))
        url = f"http://127.0.0.1:{port}/metrics"
    elif "{id}" in path:
        page = _get(server.url + "/tables/synthetic?limit=3", **headers)
        url = url.format(id=page.headers["x-request-id"])
    elif token == "bad":
        _get(url, **headers)  # the first bad token: 401, and the budget is spent
    response = _get(url, **headers)
    assert response.status == status, response.body[:300]
    assert response.headers.get("cache-control") == cache_control
    if path.endswith(".json"):
        assert response.headers.get("etag")  # the caller's own browser may revalidate


def test_the_page_assets_keep_their_own_caching(caller_dependent):
    server, _ = caller_dependent
    css = _get(server.url + "/static/tablestream.css")
    assert css.status == 200 and css.headers.get("cache-control") == "no-cache"
