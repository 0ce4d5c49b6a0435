"""Issue 28, hole 2, as an attacker tries it: forged ``_after`` tokens, hidden keys, bad values.

Before: ``_after`` was unsigned base64 JSON, so a token that hides ``customers.id`` recovered a
customer's id by binary search in 20 requests; ``offset`` pages were ordered by the hidden key;
and on PostgreSQL a value the column refuses was a 503 with an ERROR line. Each test here runs
against a real ``tablestream serve`` (``docs/production.md`` has the table of attacks):

- forged tokens → ``test_a_forged_after_token_is_a_400_and_the_hidden_key_is_never_found``
- tokens reused elsewhere → ``test_an_after_token_continues_only_the_query_it_was_made_for``
- another secret → ``test_a_token_signed_with_another_secret_is_a_400_that_says_so``
- a hidden key → ``test_a_hidden_key_gives_no_after_and_next_rows_by_offset`` and, on
  PostgreSQL, ``test_offset_pages_of_a_hidden_key_are_not_in_key_order``
- bad values → ``test_a_value_postgresql_refuses_is_a_400_and_logs_no_error``
"""

from __future__ import annotations

import base64
import html
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tablestream.access.tokens import add_token
from tablestream.config.secretfile import write_secret
from tablestream.query.keyset import NO_KEYSET
from tablestream.testing import ServerProcess, httpraw

from .pg import DSN, scratch_schema
from .tablehtml import parse_table
from .test_processes import _all_serving, _paused


def _get(server: ServerProcess, path: str, token: str) -> httpraw.RawResponse:
    return httpraw.get(server.url + path, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _message(response: httpraw.RawResponse) -> str:
    return html.unescape(response.text)


def _next(page: httpraw.RawResponse) -> str:
    """The page's "next rows" link (path and query)."""
    return html.unescape(page.text.split('rel="next" href="', 1)[1].split('"', 1)[0])


def _after(link: str) -> str:
    return dict(parse_qsl(urlsplit(link).query))["_after"]


def _forged(values: list[str | None]) -> str:
    """An ``_after`` as main wrote them: base64 JSON, which anyone could make."""
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    path = tmp_path_factory.mktemp("keyset") / "tokens.toml"
    return {
        "file": str(path),
        "hider": add_token(str(path), "hider", tables=["*"], hide=["customers.id"]),
        "seer": add_token(str(path), "seer", tables=["*"]),
    }


@pytest.fixture(scope="module")
def served(demo_db: Path, nasty_csv: Path, tokens: dict[str, str]) -> dict[str, str]:
    """The settings of the servers here: the demo database, a table without a key, tokens."""
    return {
        "TABLESTREAM_DB": str(demo_db),
        "TABLESTREAM_CSV": f"nasty={nasty_csv}",
        "TABLESTREAM_TOKENS_FILE": tokens["file"],
        "TABLESTREAM_AUTH_FAILURES_PER_MINUTE": "0",  # the searches below are not throttled
        "TABLESTREAM_SYNTHETIC_ROWS": "1000",
    }


def _serve(tmp: Path, settings: dict[str, str], *args: str, **env: str) -> ServerProcess:
    log = tmp / f"server-{len(list(tmp.glob('server-*')))}.log"
    return ServerProcess({**settings, **env}, log, args=args)


@pytest.fixture(scope="module")
def server(tmp_path_factory, served) -> Iterator[ServerProcess]:
    started = _serve(tmp_path_factory.mktemp("logs"), served)
    yield started
    started.stop()


def test_a_forged_after_token_is_a_400_and_the_hidden_key_is_never_found(server, tokens, demo_db):
    target_id, name = (
        sqlite3.connect(demo_db).execute("SELECT id, name FROM customers WHERE id = 341").fetchone()
    )
    found = []
    for who, sort in (("hider", ""), ("hider", "_sort=name&"), ("seer", "")):
        low, high = -1, 1000  # the search: a row of this name has low < id <= high
        for _ in range(10):  # 20 requests per search would have found it
            middle = (low + high) // 2
            after = _forged([str(middle)] if not sort else [name, str(middle)])
            query = urlencode({"name": name, "limit": 1000, "_after": after})
            response = _get(server, f"/tables/customers.csv?{sort}{query}", tokens[who])
            assert response.status == 400, (who, sort, response.status)
            assert response.body.count(b"\n") < 30 and name.encode() not in response.body
            low, high = (middle, high) if response.status == 200 else (low, middle)
        found.append(high)
        expected = NO_KEYSET if who == "hider" else "_after is not a continuation token"
        assert expected in _message(response)
    assert target_id not in found


def test_a_token_with_a_real_signature_and_other_values_is_refused(server, tokens):
    link = _next(_get(server, "/tables/orders?limit=5", tokens["seer"]))
    kid, _, mac = _after(link).split(".")
    altered = ".".join((kid, _forged(["900"]), mac))
    response = _get(server, f"/tables/orders?limit=5&_after={altered}", tokens["seer"])
    assert response.status == 400
    assert "_after does not belong to this query" in _message(response)


@pytest.mark.parametrize(
    "elsewhere",
    [
        "/tables/orders?status=refunded&limit=5",  # another filter value
        "/tables/orders?limit=5",  # no filter
        "/tables/orders?status=paid&customer_id=7&limit=5",  # one more filter
        "/tables/orders?status=paid&_sort=id&limit=5",  # a sort
        "/tables/customers?limit=5",  # another table
        "/tables/synthetic?status=paid&limit=5",  # another table with an id key
    ],
)
def test_an_after_token_continues_only_the_query_it_was_made_for(server, tokens, elsewhere):
    link = _next(_get(server, "/tables/orders?status=paid&limit=5", tokens["seer"]))
    response = _get(server, f"{elsewhere}&_after={_after(link)}", tokens["seer"])
    assert response.status == 400, elsewhere
    assert "_after does not belong to this query" in _message(response)


def test_the_next_rows_link_continues_the_page_and_as_a_csv_download(server, tokens, demo_db):
    paid = [
        str(i)
        for (i,) in sqlite3.connect(demo_db).execute(
            "SELECT id FROM orders WHERE status = 'paid' ORDER BY id LIMIT 12"
        )
    ]
    first = _get(server, "/tables/orders?status=paid&limit=5", tokens["seer"])
    link = _next(first)
    assert [r[0] for r in parse_table(first.text).rows] == paid[:5]
    assert [r[0] for r in parse_table(_get(server, link, tokens["seer"]).text).rows] == paid[5:10]
    # Not bound: limit, format, columns. The same continuation as a CSV of other columns.
    query = urlencode({"status": "paid", "limit": 7, "_cols": "id,total", "_after": _after(link)})
    csv = _get(server, f"/tables/orders.csv?{query}", tokens["seer"])
    assert csv.status == 200
    assert [line.split(",")[0] for line in csv.text.splitlines()[1:3]] == paid[5:7]


@pytest.mark.slow  # seconds: out of make check (the edit loop), in make test
def test_a_token_signed_with_another_secret_is_a_400_that_says_so(tmp_path, server, served, tokens):
    old, new = tmp_path / "old", tmp_path / "new"
    write_secret(str(old))
    write_secret(str(new))
    rotated = tmp_path / "rotated"
    rotated.write_text(new.read_text() + "\n" + old.read_text())
    made_by_old = _serve(tmp_path, served, TABLESTREAM_SECRET_FILE=str(old))
    made_by_rotated = _serve(tmp_path, served, TABLESTREAM_SECRET_FILE=str(rotated))
    try:
        for maker, taker, status in (
            (server, made_by_old, 400),  # a per-start secret is another deployment's
            (made_by_old, made_by_rotated, 200),  # the old secret still verifies
            (made_by_rotated, made_by_old, 400),  # the new one signs, which the old lacks
        ):
            link = _next(_get(maker, "/tables/orders?limit=5", tokens["seer"]))
            response = _get(taker, link, tokens["seer"])
            assert response.status == status, (maker.log_path, taker.log_path)
            if status == 400:
                assert "made by another deployment" in _message(response)
    finally:
        made_by_old.stop()
        made_by_rotated.stop()
    for log in (made_by_old.log_path, made_by_rotated.log_path):
        written = log.read_text()
        assert old.read_text().strip() not in written and new.read_text().strip() not in written


@pytest.mark.slow
def test_the_processes_of_one_server_take_each_others_next_rows_links(tmp_path, served, tokens):
    server = _serve(tmp_path, served, "--processes", "2")
    try:
        first, second = _all_serving(server)
        for maker, taker in ((first, second), (second, first)):
            with _paused(taker):
                link = _next(_get(server, "/tables/orders?status=paid&limit=5", tokens["seer"]))
            with _paused(maker):
                response = _get(server, link, tokens["seer"])
            assert response.status == 200, response.text
            assert len(parse_table(response.text).rows) == 5
    finally:
        server.stop()


def test_a_hidden_key_gives_no_after_and_next_rows_by_offset(server, tokens):
    hider, seer = tokens["hider"], tokens["seer"]
    real = _after(_next(_get(server, "/tables/customers?limit=5", seer)))
    for token in (real, _forged(["7"]), "!!!"):
        hidden = _get(server, f"/tables/customers?limit=5&_after={token}", hider)
        keyless = _get(server, f"/tables/nasty?limit=5&_after={token}", hider)
        assert hidden.status == keyless.status == 400
        assert _message(hidden).replace("customers", "T") == _message(keyless).replace("nasty", "T")
        assert NO_KEYSET in _message(hidden)
    page = _get(server, "/tables/customers?limit=5&_sort=city", hider)
    assert "id" not in parse_table(page.text).columns
    link = _next(page)
    assert "_after" not in link and "offset=5" in link
    assert _get(server, link, hider).status == 200
    described = json.loads(_get(server, "/tables/customers.json", hider).body)
    assert described["key"] is None and described["query"]["keyset"] is False


@pytest.fixture(scope="module")
def pg_schema() -> Iterator[str]:
    with scratch_schema("ts_keyset") as (admin, schema):
        admin.execute(f"CREATE TABLE {schema}.codes (code text PRIMARY KEY, label text NOT NULL)")
        # Inserted out of key order: a heap scan gives them in this order, the key another.
        for code in ("m", "c", "x", "a", "q", "f", "z", "b"):
            admin.execute(f"INSERT INTO {schema}.codes VALUES (%s, %s)", (code, "label-" + code))
        admin.execute(f"CREATE TABLE {schema}.things (id integer PRIMARY KEY, u uuid)")
        admin.execute(f"INSERT INTO {schema}.things VALUES (1, gen_random_uuid())")
        # A view that fails on its own (the cast is folded when any query on it is planned).
        admin.execute(f"CREATE VIEW {schema}.broken AS SELECT 1 AS id, ('a' || '')::int AS n")
        yield schema


@pytest.fixture(scope="module")
def pg_server(tmp_path_factory, pg_schema, tokens) -> Iterator[ServerProcess]:
    path = tmp_path_factory.mktemp("pg") / "tokens.toml"
    pg_tokens = {
        "file": str(path),
        "hider": add_token(str(path), "pg-hider", tables=["*"], hide=["codes.code", "things.id"]),
        "seer": add_token(str(path), "pg-seer", tables=["*"]),
    }
    started = _serve(
        path.parent,
        {"TABLESTREAM_TOKENS_FILE": pg_tokens["file"], "TABLESTREAM_DB": ""},
        TABLESTREAM_PG_DSN=DSN,
        TABLESTREAM_PG_TABLES=f"{pg_schema}.codes,{pg_schema}.things,{pg_schema}.broken",
    )
    started.tokens = pg_tokens  # type: ignore[attr-defined]
    yield started
    started.stop()


@pytest.mark.postgres
def test_offset_pages_of_a_hidden_key_are_not_in_key_order(pg_server):
    hider, seer = pg_server.tokens["hider"], pg_server.tokens["seer"]  # type: ignore[attr-defined]

    def labels(path: str, token: str) -> list[str]:
        return [r[-1] for r in parse_table(_get(pg_server, path, token).text).rows]

    in_key_order = [f"label-{c}" for c in "abcfmqxz"]
    assert labels("/tables/codes?limit=8", seer) == in_key_order
    hidden = labels("/tables/codes?limit=8", hider)
    assert sorted(hidden) == in_key_order and hidden != in_key_order
    # The row at offset k is the k-th of the table's own order, not the k-th key.
    assert [labels(f"/tables/codes?limit=1&offset={k}", hider)[0] for k in range(8)] == hidden
    response = _get(pg_server, f"/tables/codes?limit=2&_after={_forged(['c'])}", hider)
    assert response.status == 400 and NO_KEYSET in _message(response)


@pytest.mark.postgres
def test_a_value_postgresql_refuses_is_a_400_and_logs_no_error(pg_server):
    hider, seer = pg_server.tokens["hider"], pg_server.tokens["seer"]  # type: ignore[attr-defined]
    logged_before = len(pg_server.log_path.read_text())
    for path, token, says in (
        ("/tables/things?u=abc", seer, 'invalid input syntax for type uuid: "abc"'),
        ("/tables/things.csv?u__in=1,2", seer, "invalid input syntax for type uuid"),
        (f"/tables/things?_after={_forged(['abc'])}", seer, "_after is not a continuation"),
        (f"/tables/things?_after={_forged(['abc'])}", hider, NO_KEYSET),
    ):
        response = _get(pg_server, path, token)
        assert response.status == 400, (path, response.status)
        assert says in _message(response), _message(response)
    assert _get(pg_server, "/tables/things?limit=1", hider).status == 200
    log = pg_server.log_path.read_text()[logged_before:]
    assert "400" in log  # the access log has the requests above
    assert " ERROR " not in log and "Traceback" not in log, log


@pytest.mark.postgres
def test_a_table_that_fails_on_its_own_data_stays_a_503_with_or_without_a_filter(pg_server):
    seer = pg_server.tokens["seer"]  # type: ignore[attr-defined]
    for path in ("/tables/broken", "/tables/broken?id=1"):
        assert _get(pg_server, path, seer).status == 503, path
