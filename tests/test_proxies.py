"""Behind a proxy: whose forwarded headers are believed, and redirects that name no host."""

from __future__ import annotations

import http.client
import json
import logging

import pytest
from waitress.adjustments import Adjustments

from tablestream import ConfigError, create_app
from tablestream.config import Settings
from tablestream.security import relative_location
from tablestream.server.connections import waitress_options

from .servers import wait_for


def test_waitress_leaves_forwarded_headers_to_the_app_which_needs_the_peer_address():
    # access/peer.py applies waitress's proxy-header middleware inside the app, after noting the
    # real peer (the proxy sign-in believes its headers only from the trusted proxy).
    for env in ({}, {"TABLESTREAM_TRUSTED_PROXY": "10.0.0.5"}):
        options = waitress_options(Settings.from_env(env))
        adjustments = Adjustments(**options)  # waitress accepts them as given
        assert "trusted_proxy" not in options
        assert adjustments.clear_untrusted_proxy_headers is False


def _seen_by_the_app(settings: dict, peer: str, headers: dict[str, str]) -> dict[str, str]:
    """What a view sees of the client and the forwarded headers, for a request from ``peer``."""
    app = create_app(settings)

    @app.get("/_seen")
    def seen() -> dict[str, str]:
        from flask import request

        return {
            "remote": request.remote_addr or "",
            "scheme": request.scheme,
            "host": request.host,
        }

    response = app.test_client().get("/_seen", headers=headers, environ_base={"REMOTE_ADDR": peer})
    return response.get_json()


def test_trusted_proxy_settings_reach_the_apps_proxy_middleware(settings_for):
    settings = settings_for(
        trusted_proxy="10.0.0.5",
        trusted_proxy_count=2,
        trusted_proxy_headers="X-Forwarded-For, x-forwarded-proto",
    )
    headers = {"X-Forwarded-For": "192.0.2.1, 198.51.100.9, 10.0.0.7", "X-Forwarded-Proto": "https"}
    # Two tiers: the client is the second entry from the end.
    assert _seen_by_the_app(settings, "10.0.0.5", headers)["remote"] == "198.51.100.9"
    assert _seen_by_the_app(settings, "10.0.0.5", headers)["scheme"] == "https"
    # From any other peer nothing forwarded is believed.
    other = _seen_by_the_app(settings, "10.0.0.6", headers)
    assert (other["remote"], other["scheme"]) == ("10.0.0.6", "http")


def test_settings_passed_whole_to_a_child_process_are_accepted_without_a_proxy():
    parent = Settings.from_env({})
    assert Settings.from_env(parent.to_env()) == parent  # --processes hands every setting on


def test_the_default_headers_with_a_trusted_proxy_are_for_and_proto(settings_for):
    settings = settings_for(trusted_proxy="10.0.0.5")
    headers = {
        "X-Forwarded-For": "198.51.100.9",
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "evil.example",
    }
    seen = _seen_by_the_app(settings, "10.0.0.5", headers)
    assert (seen["remote"], seen["scheme"]) == ("198.51.100.9", "https")
    assert seen["host"] != "evil.example"  # X-Forwarded-Host is not believed by default


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TABLESTREAM_TRUSTED_PROXY": "proxy.internal"}, "is not an IP address"),
        ({"TABLESTREAM_TRUSTED_PROXY_COUNT": "2"}, "TRUSTED_PROXY is empty"),
        ({"TABLESTREAM_TRUSTED_PROXY_HEADERS": "x-forwarded-for"}, "TRUSTED_PROXY is empty"),
        (
            {
                "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
                "TABLESTREAM_TRUSTED_PROXY_HEADERS": "x-real-ip",
            },
            "names x-real-ip, which waitress does not know; expected some of forwarded,",
        ),
        (
            {
                "TABLESTREAM_TRUSTED_PROXY": "127.0.0.1",
                "TABLESTREAM_TRUSTED_PROXY_HEADERS": "forwarded x-forwarded-for",
            },
            "mixes forwarded with x-forwarded-",
        ),
        (
            {"TABLESTREAM_TRUSTED_PROXY": "127.0.0.1", "TABLESTREAM_TRUSTED_PROXY_HEADERS": ""},
            "TRUSTED_PROXY_HEADERS is empty",
        ),
        (
            {"TABLESTREAM_TRUSTED_PROXY": "127.0.0.1", "TABLESTREAM_TRUSTED_PROXY_COUNT": "0"},
            "out of range",
        ),
    ],
)
def test_proxy_settings_that_cannot_work_are_refused_at_start(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def _access_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "tablestream.access"]


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "remote"),
    [
        ("", "203.0.113.7", "127.0.0.1"),  # nobody trusted: the header is ignored
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),  # the peer is the proxy: its header counts
        ("127.0.0.1", "198.51.100.9, 203.0.113.7", "203.0.113.7"),  # one tier: the last entry
        ("10.9.9.9", "203.0.113.7", "127.0.0.1"),  # a peer that is not the proxy is not believed
    ],
)
def test_the_access_log_shows_the_client_only_a_trusted_proxy_names(
    settings_for, thread_server, caplog, trusted, forwarded_for, remote
):
    app = create_app(settings_for(trusted_proxy=trusted))
    server = thread_server(app)
    caplog.set_level(logging.INFO, logger="tablestream.access")
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=10)
    conn.request(
        "GET", "/healthz", headers={"X-Forwarded-For": forwarded_for, "X-Request-ID": "xff-1"}
    )
    response = conn.getresponse()
    assert response.read() == b"ok\n"
    request_id = response.getheader("X-Request-ID")  # xff-1 from the trusted proxy only
    assert (request_id == "xff-1") == (trusted == "127.0.0.1")
    conn.close()
    # The line is written when waitress closes the response, just after the client has it.
    lines = wait_for(
        lambda: [line for line in _access_lines(caplog) if line["request_id"] == request_id],
        10,
        "the request's access log line",
    )
    assert [line["remote"] for line in lines] == [remote]


def test_the_slash_merging_redirect_names_no_host_even_when_the_host_header_lies(client):
    response = client.get("/tables//synthetic?limit=3", headers={"Host": "evil.example"})
    assert response.status_code == 308
    assert response.headers["Location"] == "/tables/synthetic?limit=3"


def test_a_redirect_through_real_waitress_is_relative_whatever_the_host_header(app, thread_server):
    server = thread_server(app)
    conn = http.client.HTTPConnection("127.0.0.1", int(server.url.rsplit(":", 1)[1]), timeout=10)
    conn.request("GET", "/tables//synthetic.csv?limit=2", headers={"Host": "evil.example"})
    response = conn.getresponse()
    response.read()
    conn.close()
    assert response.status == 308
    assert response.getheader("Location") == "/tables/synthetic.csv?limit=2"


@pytest.mark.parametrize(
    ("location", "relative"),
    [
        ("http://evil.example/tables/orders", "/tables/orders"),
        ("https://h:8443/tables/a?limit=1#x", "/tables/a?limit=1#x"),
        ("http://evil.example//evil.example/x", "/evil.example/x"),  # never "//host" (off-site)
        ("/already/relative", "/already/relative"),
    ],
)
def test_relative_location_keeps_path_and_query_and_never_a_host(location, relative):
    assert relative_location(location) == relative
