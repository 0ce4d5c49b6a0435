"""`tablestream serve` says in one line why it cannot listen, and exits non-zero.

A port already taken is the commonest start-up failure (a second `make run`, a server still
draining), so it must read as a sentence naming the address and the setting, not a traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

PREFIX = "tablestream: "


def _serve(tmp_path, env: dict[str, str], pass_fds=()) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tablestream", "serve"],
        env={"PATH": "/usr/bin:/bin", "TABLESTREAM_DB": "", **env},
        pass_fds=pass_fds,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def taken_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_taken_port_is_one_line_naming_the_address_and_the_setting(
    tmp_path, taken_port, processes
):
    done = _serve(
        tmp_path, {"TABLESTREAM_PORT": str(taken_port), "TABLESTREAM_PROCESSES": processes}
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"{PREFIX}cannot listen on 127.0.0.1:{taken_port}: Address already in use; expected a "
        "free port on an address of this machine (another server running? change "
        "TABLESTREAM_HOST or TABLESTREAM_PORT)"
    ]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_taken_metrics_port_names_the_metrics_setting(tmp_path, taken_port, processes):
    env = {
        "TABLESTREAM_PORT": "0",
        "TABLESTREAM_METRICS_PORT": str(taken_port),
        "TABLESTREAM_PROCESSES": processes,
    }
    done = _serve(tmp_path, env)
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"{PREFIX}cannot listen on 127.0.0.1:{taken_port}: ")
    assert line.endswith("change TABLESTREAM_METRICS_HOST or TABLESTREAM_METRICS_PORT)")


def test_an_address_of_another_machine_is_one_line(tmp_path):
    # 203.0.113.0/24 is TEST-NET-3: never an address of this machine, and no DNS is asked.
    done = _serve(tmp_path, {"TABLESTREAM_HOST": "203.0.113.7", "TABLESTREAM_PORT": "0"})
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"{PREFIX}cannot listen on 203.0.113.7:0: Cannot assign requested address; expected a "
        "free port on an address of this machine (another server running? change "
        "TABLESTREAM_HOST or TABLESTREAM_PORT)"
    ]


@pytest.mark.parametrize("handed", ["a regular file", "a socket that is not listening", "nothing"])
def test_serve_refuses_a_listen_fd_that_is_not_a_listening_socket(tmp_path, handed):
    keep = []
    if handed == "a regular file":
        keep.append(open(tmp_path / "not-a-socket", "wb"))  # noqa: SIM115 - closed below
        fd = keep[-1].fileno()
    elif handed == "a socket that is not listening":
        keep.append(socket.socket())
        fd = keep[-1].fileno()
    else:
        fd = 999  # not open in the child
    try:
        done = _serve(
            tmp_path, {"TABLESTREAM_LISTEN_FD": str(fd)}, pass_fds=[k.fileno() for k in keep]
        )
    finally:
        for k in keep:
            k.close()
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    prefix = "tablestream: configuration error: "
    assert line.startswith(f"{prefix}TABLESTREAM_LISTEN_FD={fd} is not a listening TCP socket")
    assert "expected an inherited, bound, listening socket or 0" in line


def test_the_metrics_port_starts_without_a_reverse_dns_lookup(monkeypatch):
    # The standard library's HTTPServer asks DNS for the bound address's name; where DNS does
    # not answer (a host with no resolver, tests/test_cluster.py's namespaces) that blocked
    # start-up for two resolver timeouts while the main port already accepted connections.
    import urllib.request

    from prometheus_client import CollectorRegistry

    from tablestream.config import Settings
    from tablestream.server.metricsport import serve_metrics_port
    from tablestream.testing import free_port

    asked: list[str] = []
    monkeypatch.setattr(socket, "getfqdn", lambda name="": asked.append(name) or name)
    port = free_port()
    settings = Settings.from_mapping({"db": "", "metrics_port": str(port)})
    serve_metrics_port(settings, registry=CollectorRegistry())
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        assert response.status == 200
    assert asked == []
