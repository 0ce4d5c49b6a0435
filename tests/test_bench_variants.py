"""The benchmark compares like with like: every variant sends the service's bytes, and the
comparison routes exist only in the bench server, never in the production app."""

from __future__ import annotations

import pytest

from bench.variants import bp
from service import create_app


@pytest.fixture
def bench_client():
    app = create_app({"db": "", "synthetic_rows": "5000"})
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
