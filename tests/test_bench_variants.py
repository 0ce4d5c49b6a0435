"""The benchmark compares like with like: every variant sends the service's bytes, and the
comparison routes exist only in the bench server, never in the production app."""

from __future__ import annotations

import re
import shutil
import sqlite3

import pytest

from bench.variants import bp, install_row_template_tables
from tablestream import create_app


@pytest.fixture
def bench_client():
    # As behind nginx, so the fixed X-Request-ID is kept and the pages compare byte for byte.
    app = create_app({"db": "", "synthetic_rows": "5000", "trusted_proxy": "127.0.0.1"})
    app.register_blueprint(bp)
    return app.test_client()


@pytest.mark.parametrize("variant", ["render_template", "buffered5", "hand"])
def test_every_variant_sends_the_same_page_as_the_service(bench_client, variant):
    same_id = {"X-Request-ID": "same"}  # the page links to its own stream's status
    service = bench_client.get("/tables/synthetic?limit=1234", headers=same_id).get_data()
    assert b'data-rows-sent="1234"' in service and b"/streams/same" in service
    assert bench_client.get(f"/bench/{variant}?limit=1234", headers=same_id).get_data() == service


def test_the_ceiling_sends_exactly_the_bytes_asked_for(bench_client):
    assert len(bench_client.get("/bench/ceiling?bytes=100003").get_data()) == 100_003


def test_the_production_app_has_no_bench_routes():
    app = create_app({"db": "", "synthetic_rows": "10"})
    assert not [r.rule for r in app.url_map.iter_rules() if r.rule.startswith("/bench")]
    assert app.test_client().get("/bench/hand").status_code == 404


def test_hand_written_rows_are_the_row_templates_markup(demo_db, tmp_path):
    db = tmp_path / "demo.sqlite3"
    shutil.copyfile(demo_db, db)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE VIEW orders_hand AS SELECT * FROM orders")
    app = create_app({"db": str(db), "synthetic_rows": "5000"})
    app.register_blueprint(bp)
    install_row_template_tables(app, 5000)
    client = app.test_client()

    def rows(path: str) -> bytes:
        """The rows' markup, without the resume points (a view, without a key, has none)."""
        page = client.get(path).get_data()
        return re.sub(
            rb"<!--ts-after [^>]*-->", b"", page[page.index(b"<tbody>") : page.index(b"</table>")]
        )

    for template, hand in (("synthetic_rt", "synthetic_hand"), ("orders", "orders_hand")):
        ours = rows(f"/tables/{template}?limit=3000")
        by_hand = rows(f"/tables/{hand}?limit=3000")
        assert ours.count(b"<tr") == 3000 and b'class="ts-void"' in ours
        # html.escape spells the quotes otherwise; nothing else may differ.
        assert by_hand.replace(b"&#x27;", b"&#39;").replace(b"&quot;", b"&#34;") == ours
