"""Who may read which table: tokens, the proxy sign-in, and what a refused caller learns (nothing).

Against real waitress servers on 127.0.0.1 with a real tokens file and the demo SQLite database.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import signal
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tablestream import ConfigError, create_app
from tablestream.access.tokens import TokenFile, add_token, hash_token, remove_token
from tablestream.server.cli import main as cli_main
from tablestream.server.cli import warn_if_open
from tablestream.testing import httpraw

from .servers import wait_for
from .tablehtml import parse_table


@pytest.fixture
def tokens(tmp_path: Path) -> dict[str, str]:
    """A tokens file with: orders only; every table but customers' e-mail; metrics; expired."""
    path = tmp_path / "tokens.toml"
    made = {
        "orders": add_token(str(path), "orders-reader", tables=["orders"]),
        "all": add_token(str(path), "analyst", tables=["*"], hide=["customers.email"]),
        "ops": add_token(str(path), "ops", tables=[], scopes=["metrics"]),
        "expired": add_token(
            str(path),
            "old",
            tables=["*"],
            expires=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        ),
    }
    made["file"] = str(path)
    return made


@pytest.fixture
def secured(tokens, settings_for, thread_server):
    """A real server with the tokens file (and the failure budget off unless a test sets it)."""

    def start(**overrides):
        values = {"tokens_file": tokens["file"], "auth_failures_per_minute": "0", **overrides}
        return thread_server(create_app(settings_for(**values)))

    return start


def _get(url: str, token: str | None = None, **headers: str) -> httpraw.RawResponse:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpraw.get(url, headers=headers, timeout=30)


# Every URL the service answers, and some it does not.
TABLE_URLS = [
    "/",
    "/tables/orders",
    "/tables/orders?limit=5",
    "/tables/orders.csv",
    "/tables/orders.ndjson?limit=3",
    "/tables/orders?format=csv&limit=3",
    "/tables/customers.csv?limit=3",
    "/tables/synthetic?limit=10",
    "/tables/nasty",
    "/tables/no-such-table",
    "/streams/0123456789abcdef0123456789abcdef",
    "/metrics",
    "/no/such/page",
]


def test_without_credentials_every_url_but_healthz_is_401_with_a_bearer_challenge(secured):
    server = secured()
    for path in TABLE_URLS:
        response = _get(server.url + path)
        assert response.status == 401, path
        assert response.headers["www-authenticate"].startswith('Bearer realm="tablestream"')
        body = response.body
        # Not a byte of any table: no column name, no cell, no table name beyond the asked path.
        for leak in (b"customer_id", b"email", b"Sprocket", b"<td>", b"nasty", b"payload"):
            assert leak not in body, (path, leak)
    assert _get(server.url + "/healthz").body == b"ok\n"
    assert _get(server.url + "/readyz").body == b"ready\n"
    assert _get(server.url + "/static/tablestream.css").status == 200


def test_a_token_reads_exactly_the_tables_it_is_granted_in_every_format(secured, tokens):
    server = secured()
    for path in ("/tables/orders?limit=5", "/tables/orders.csv?limit=5", "/tables/orders.ndjson"):
        response = _get(server.url + path, tokens["orders"])
        assert response.status == 200 and response.terminated, path
    page = parse_table(_get(server.url + "/tables/orders?limit=5", tokens["orders"]).text)
    assert page.rows_sent == 5
    for path in ("/tables/customers", "/tables/customers.csv", "/tables/synthetic?limit=1"):
        assert _get(server.url + path, tokens["orders"]).status == 404, path
    assert _get(server.url + "/tables/customers?limit=2", tokens["all"]).status == 200


def test_a_table_not_granted_answers_exactly_like_a_table_that_does_not_exist(secured, tokens):
    server = secured()
    for hidden, missing in (
        ("customers", "customerz"),
        ("customers.csv", "customerz.csv"),
        ("synthetic.ndjson", "synthetik.ndjson"),
    ):
        refused = _get(f"{server.url}/tables/{hidden}", tokens["orders"])
        unknown = _get(f"{server.url}/tables/{missing}", tokens["orders"])
        assert refused.status == unknown.status == 404
        assert refused.body.replace(hidden.encode(), b"NAME") == unknown.body.replace(
            missing.encode(), b"NAME"
        )
        names = {k for k in refused.headers if k != "x-request-id"}
        assert names == {k for k in unknown.headers if k != "x-request-id"}
        # The 404 page lists the tables this caller may read, and only those.
        assert b"/tables/orders" in refused.body and b"/tables/customers" not in refused.body


def test_the_index_lists_only_the_granted_tables_and_no_hidden_column(secured, tokens):
    server = secured()
    index = _get(server.url + "/", tokens["orders"]).text
    assert "/tables/orders" in index
    for other in ("/tables/customers", "/tables/synthetic", "/tables/nasty"):
        assert other not in index
    everything = _get(server.url + "/", tokens["all"]).text
    assert "/tables/customers" in everything and "/tables/nasty" in everything
    # customers' columns are listed without the hidden one (synthetic has its own email column)
    assert "<td>id, name, city, signed_up</td>" in everything
    assert "id, name, email, city" not in everything


def test_a_hidden_column_is_absent_in_every_format_never_blank(secured, tokens, demo_db):
    server = secured()
    with sqlite3.connect(demo_db) as db:
        emails = [r[0] for r in db.execute("SELECT email FROM customers ORDER BY id LIMIT 20")]
    html = _get(server.url + "/tables/customers?limit=20", tokens["all"])
    page = parse_table(html.text)
    assert page.columns == ["id", "name", "city", "signed_up"]
    assert all(len(row) == 4 for row in page.rows) and page.rows_sent == 20
    csv_text = _get(server.url + "/tables/customers.csv?limit=20", tokens["all"]).text
    assert csv_text.splitlines()[0] == "id,name,city,signed_up"
    lines = _get(server.url + "/tables/customers.ndjson?limit=20", tokens["all"]).text.splitlines()
    assert list(json.loads(lines[0])) == ["id", "name", "city", "signed_up"]
    for body in (html.text, csv_text, "\n".join(lines)):
        assert not any(email in body for email in emails)


@pytest.mark.parametrize(
    ("authorization", "reason", "error"),
    [
        ("Bearer tst_thisisnotatokenthisisnotatokenthisisnotato", "invalid", "invalid_token"),
        ("Bearer short", "invalid", "invalid_token"),
        ("Basic dXNlcjpwYXNz", "malformed", "invalid_request"),
        ("Bearer", "malformed", "invalid_request"),
        ("Bearer two words", "malformed", "invalid_request"),
    ],
)
def test_a_bad_authorization_is_401_says_what_kind_and_is_counted(
    secured, authorization, reason, error
):
    server = secured()
    response = _get(server.url + "/tables/orders?limit=1", Authorization=authorization)
    assert response.status == 401
    assert f'error="{error}"' in response.headers["www-authenticate"]
    assert f'tablestream_auth_failures_total{{reason="{reason}"}} 1.0' in _metrics(server)


def _metrics(server) -> str:
    app = server.app
    return app.extensions["tablestream"].metrics.exposition().decode()


def test_an_expired_token_is_refused_by_name_and_counted(secured, tokens):
    server = secured()
    response = _get(server.url + "/tables/orders?limit=1", tokens["expired"])
    assert response.status == 401
    assert "The token &#39;old&#39; has expired." in response.text
    assert 'tablestream_auth_failures_total{reason="expired"} 1.0' in _metrics(server)


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_metrics_need_the_metrics_scope_and_readyz_says_more_only_with_it(
    secured, tokens, tmp_path
):
    broken = tmp_path / "gone.csv"
    broken.write_text("a\n1\n")
    server = secured(csv=f"gone={broken}")
    readers = _get(server.url + "/metrics", tokens["all"])
    assert readers.status == 403
    assert 'error="insufficient_scope"' in readers.headers["www-authenticate"]
    ops = _get(server.url + "/metrics", tokens["ops"])
    assert ops.status == 200 and b"tablestream_auth_failures_total" in ops.body
    assert b'reason="insufficient_scope"} 1.0' in ops.body
    broken.unlink()
    time.sleep(1.6)  # past the readiness cache
    anonymous = _get(server.url + "/readyz")
    assert (anonymous.status, anonymous.body) == (503, b"not ready\n")
    assert b"gone" in _get(server.url + "/readyz", tokens["ops"]).body
    assert b"gone" not in _get(server.url + "/readyz", tokens["all"]).body


def test_a_stream_status_answers_only_the_caller_that_started_the_stream(secured, tokens):
    server = secured()
    page = _get(server.url + "/tables/orders?limit=10", tokens["orders"])
    status_url = page.text.split('data-status-url="', 1)[1].split('"', 1)[0]
    mine = _get(server.url + status_url, tokens["orders"])
    assert mine.status == 200 and json.loads(mine.body)["outcome"] == "completed"
    theirs = _get(server.url + status_url, tokens["all"])
    never = _get(server.url + "/streams/ffffffffffffffffffffffffffffffff", tokens["all"])
    assert theirs.status == never.status == 404
    assert theirs.body.replace(status_url.rsplit("/", 1)[1].encode(), b"ID") == never.body.replace(
        b"ffffffffffffffffffffffffffffffff", b"ID"
    )


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_removed_token_is_refused_within_seconds_and_its_running_stream_ends_whole(
    secured, tokens
):
    server = secured()
    # A stream started with the token: read slowly, so it is still running at the removal.
    result: list[httpraw.RawResponse] = []
    reader = threading.Thread(
        target=lambda: result.append(
            httpraw.get(
                server.url + "/tables/synthetic?limit=200000",
                headers={"Authorization": f"Bearer {tokens['all']}"},
                keep=False,
                read_pause=0.002,
            )
        )
    )
    reader.start()
    time.sleep(0.5)
    remove_token(tokens["file"], "analyst")
    wait_for(
        lambda: _get(server.url + "/tables/orders?limit=1", tokens["all"]).status == 401,
        5,
        "the removed token refused",
    )
    assert _get(server.url + "/tables/orders?limit=1", tokens["orders"]).status == 200
    reader.join(60)
    assert result and result[0].terminated and b'data-rows-sent="200000"' in result[0].tail


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_sighup_reloads_a_tokens_file_whose_change_the_file_stamp_cannot_show(
    process_server, tokens, demo_db
):
    path = Path(tokens["file"])
    server = process_server(
        TABLESTREAM_TOKENS_FILE=str(path),
        TABLESTREAM_SYNTHETIC_ROWS="1000",
        TABLESTREAM_DB=str(demo_db),  # the tokens hide customers.email: a served column
    )
    url = server.url + "/tables/synthetic?limit=1"
    assert _get(url, tokens["all"]).status == 200
    # Swap the analyst's hash for a new token's in place: same size, same inode, old mtime.
    stamp = path.stat()
    new_token = "tst_" + "N" * 43
    text = path.read_text().replace(hash_token(tokens["all"]).hex(), hash_token(new_token).hex())
    with path.open("r+") as f:
        f.write(text)
    os.utime(path, ns=(stamp.st_atime_ns, stamp.st_mtime_ns))
    time.sleep(1.5)
    assert _get(url, new_token).status == 401  # no change visible without the signal
    os.kill(server.pid, signal.SIGHUP)
    wait_for(lambda: _get(url, new_token).status == 200, 5, "the new token after SIGHUP")
    assert _get(url, tokens["all"]).status == 401


def test_wrong_tokens_over_the_failure_budget_get_429_and_a_valid_token_still_gets_in(
    secured, tokens
):
    server = secured(auth_failures_per_minute="5")
    for _ in range(5):
        assert _get(server.url + "/tables/orders?limit=1", "tst_wrong").status == 401
    throttled = _get(server.url + "/tables/orders?limit=1", "tst_wrong")
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["retry-after"]) <= 12
    assert 'tablestream_auth_failures_total{reason="throttled"} 1.0' in _metrics(server)
    # The credential is checked first: a valid one is never refused for its address's failures.
    assert _get(server.url + "/tables/orders?limit=1", tokens["orders"]).status == 200
    assert _get(server.url + "/tables/orders?limit=1").status == 401  # none given: nothing spent
    assert _get(server.url + "/healthz").status == 200  # the probe never needs a budget


def _policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.toml"
    path.write_text(
        '[groups.analysts]\ntables = ["orders"]\n\n'
        '[groups.sre]\nscopes = ["metrics"]\n\n'
        '[users."carol@example.com"]\ntables = ["customers"]\nhide = ["customers.email"]\n'
    )
    return str(path)


PROXY_SECRET = "s3cret-" + "0123456789abcdef" * 4  # what the sign-in site sends


def proxy_settings(tmp_path: Path, trusted: str = "127.0.0.1") -> dict[str, str]:
    """The settings of a service behind a sign-in proxy: policy, trusted peer, proxy secret."""
    secret = tmp_path / "proxy-secret"
    secret.write_text(PROXY_SECRET + "\n")
    return {
        "auth_policy_file": _policy(tmp_path),
        "trusted_proxy": trusted,
        "auth_proxy_secret_file": str(secret),
    }


@pytest.mark.parametrize("trusted", ["127.0.0.1", "10.9.9.9"])
def test_the_proxy_user_is_believed_only_from_the_trusted_proxy(
    settings_for, thread_server, tmp_path, trusted
):
    app = create_app(settings_for(**proxy_settings(tmp_path, trusted)))
    server = thread_server(app)
    proof = {"X-Tablestream-Proxy-Secret": PROXY_SECRET}
    signed_in = {
        "X-Forwarded-User": "alice@example.com",
        "X-Forwarded-Groups": "staff, analysts",
        **proof,
    }
    orders = _get(server.url + "/tables/orders?limit=2", **signed_in)
    if trusted == "127.0.0.1":
        assert orders.status == 200
        assert _get(server.url + "/tables/customers?limit=2", **signed_in).status == 404
        carol = _get(
            server.url + "/tables/customers.csv?limit=2",
            **{"X-Forwarded-User": "carol@example.com", **proof},
        )
        assert carol.status == 200 and carol.text.splitlines()[0] == "id,name,city,signed_up"
        assert _get(server.url + "/metrics", **signed_in).status == 403
        sre = {"X-Forwarded-User": "bob", "X-Forwarded-Groups": "sre", **proof}
        assert _get(server.url + "/metrics", **sre).status == 200
    else:
        # From a peer that is not the proxy the headers are stripped: no credentials at all.
        assert orders.status == 401
        assert (
            _get(server.url + "/tables/orders?limit=2", **{"X-Forwarded-User": "admin"}).status
            == 401
        )


def test_no_token_or_hash_appears_in_logs_metrics_or_pages(secured, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    server = secured()
    secrets_ = [tokens[k] for k in ("orders", "all", "ops", "expired")]
    hashes = [hash_token(t).hex() for t in secrets_]
    bodies = []
    for token in [*secrets_, secrets_[0][:-1] + "x"]:
        for path in TABLE_URLS:
            bodies.append(_get(server.url + path, token).body)
    wait_for(lambda: len(caplog.records) >= len(bodies), 10, "every access log line")
    written = caplog.text + _metrics(server) + b"".join(bodies).decode("utf-8", "replace")
    for secret in secrets_ + hashes:
        assert secret not in written
    assert '"user":"orders-reader"' in caplog.text  # the access log names the token instead


def test_serve_logs_neither_token_nor_hash_and_names_the_caller(process_server, tokens, demo_db):
    server = process_server(TABLESTREAM_TOKENS_FILE=tokens["file"], TABLESTREAM_DB=str(demo_db))
    assert _get(server.url + "/tables/synthetic?limit=3", tokens["all"]).status == 200
    assert _get(server.url + "/tables/synthetic?limit=3", "tst_" + "x" * 43).status == 401
    server.stop()
    log = server.log_path.read_text()
    assert '"user":"analyst"' in log
    for secret in (tokens["all"], hash_token(tokens["all"]).hex()):
        assert secret not in log


def test_a_wrong_token_takes_the_same_time_whatever_its_length(tokens):
    store = TokenFile(tokens["file"])
    right_length = "tst_" + "A" * (len(tokens["all"]) - 4)
    candidates = {"right length": right_length, "short": "x", "long": "y" * 200}
    samples: dict[str, list[int]] = {k: [] for k in candidates}
    for _ in range(3000):  # interleaved, so drift on a busy machine hits all alike
        for label, token in candidates.items():
            started = time.perf_counter_ns()
            store.find(token)
            samples[label].append(time.perf_counter_ns() - started)
    medians = {label: statistics.median(values) for label, values in samples.items()}
    base = medians["right length"]
    for median in medians.values():
        assert 0.67 < median / base < 1.5, medians


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    header=st.one_of(
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300),
        st.builds(
            lambda s: "Bearer " + s,
            st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=120),
        ),
        st.sampled_from(["Bearer", "bearer  x", "BEARER tst_x", "Bearer =", "Bearer a=b", ""]),
    ),
    path=st.sampled_from(
        ["/", "/tables/orders?limit=2", "/tables/customers.csv", "/metrics", "/readyz", "/nope"]
    ),
)
def test_any_authorization_header_gets_401_403_404_or_200_never_a_server_error(
    tokens, settings_for, header, path
):
    app = _fuzz_app(tokens["file"], settings_for)
    response = app.test_client().get(path, headers={"Authorization": header})
    assert response.status_code in (200, 401, 403, 404), (header, response.status_code)
    assert tokens["all"] not in response.get_data(as_text=True)


_APPS: dict[str, object] = {}


def _fuzz_app(path: str, settings_for):
    if path not in _APPS:
        _APPS[path] = create_app(settings_for(tokens_file=path, auth_failures_per_minute="0"))
    return _APPS[path]


def test_a_policy_file_without_a_trusted_proxy_is_refused_at_start(settings_for, tmp_path):
    with pytest.raises(ConfigError, match="TABLESTREAM_TRUSTED_PROXY is empty"):
        create_app(settings_for(auth_policy_file=_policy(tmp_path)))


def test_a_malformed_tokens_file_stops_start_up_with_where_and_why(tmp_path, capsys):
    path = tmp_path / "tokens.toml"
    path.write_text('[[token]]\nname = "x"\nsha256 = "abc"\ntables = ["*"]\n')
    assert cli_main(["token", "remove", "x", "--file", str(path)]) == 2
    assert "sha256 must be 64 hex digits" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="token 1 \\(x\\): sha256 must be 64 hex digits"):
        create_app({"tokens_file": str(path), "db": ""})


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_typo_in_one_token_keeps_the_others_working_and_refuses_the_one_edited(secured, tokens):
    server = secured()
    path = Path(tokens["file"])
    assert _get(server.url + "/tables/orders?limit=1", tokens["orders"]).status == 200
    # The analyst's entry gets a typo: its block changed, every other block is unchanged.
    path.write_text(path.read_text().replace('name = "analyst"', 'name = "analyst'))
    wait_for(
        lambda: _get(server.url + "/tables/orders?limit=1", tokens["all"]).status == 401,
        5,
        "the edited token refused",
    )
    assert _get(server.url + "/tables/orders?limit=1", tokens["orders"]).status == 200
    assert 'tablestream_access_file_broken{file="tokens"} 1.0' in _metrics(server)


def test_token_add_prints_the_token_once_and_stores_only_its_hash(tmp_path, capsys):
    path = tmp_path / "t.toml"
    assert (
        cli_main(["token", "add", "nightly", "--tables", "orders,reports.*", "--file", str(path)])
        == 0
    )
    token = capsys.readouterr().out.strip()
    assert token.startswith("tst_") and len(token) > 40
    stored = path.read_text()
    assert token not in stored and hash_token(token).hex() in stored
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert cli_main(["token", "add", "nothing", "--file", str(path)]) == 2
    assert "would allow nothing" in capsys.readouterr().err


def test_an_open_service_on_a_public_address_says_so_in_one_warning(caplog):
    caplog.set_level(logging.WARNING, logger="tablestream")
    warn_if_open(False, "127.0.0.1")
    warn_if_open(True, "0.0.0.0")
    assert not caplog.records
    warn_if_open(False, "0.0.0.0")
    assert len(caplog.records) == 1 and "access: OPEN" in caplog.records[0].getMessage()


def test_every_process_of_processes_2_checks_the_tokens(process_server, tokens, demo_db):
    server = process_server(
        ("--processes", "2"),
        TABLESTREAM_TOKENS_FILE=tokens["file"],
        TABLESTREAM_DB=str(demo_db),
        TABLESTREAM_SYNTHETIC_ROWS="1000",
    )
    assert len(server.pids()) == 3
    url = server.url + "/tables/synthetic.csv?limit=5"
    # Fresh connections, so both children answer some of them.
    answers = [(_get(url).status, _get(url, tokens["all"]).status) for _ in range(10)]
    assert set(answers) == {(401, 200)}


def test_a_table_description_follows_the_grants_and_hides_hidden_columns(secured, tokens):
    server = secured()
    assert _get(server.url + "/tables/customers.json").status == 401
    assert _get(server.url + "/tables/customers.json", tokens["orders"]).status == 404
    described = json.loads(_get(server.url + "/tables/customers.json", tokens["all"]).body)
    assert [c["name"] for c in described["columns"]] == ["id", "name", "city", "signed_up"]
