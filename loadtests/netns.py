"""Hosts on one machine: a network namespace per instance, joined to this one by a veth pair.

Several instances of the service are only worth testing as several *hosts*: each with its own
address, its own listening socket and its own loopback, reached by nginx and Prometheus over a
link, not over 127.0.0.1. ``ip netns`` (Debian's iproute2, root only) gives exactly that: host
``i`` is the namespace ``tsc<tag>-<i>``, its end of the veth pair has ``10.N.i.2/24`` and the
root namespace's end ``10.N.i.1`` (``N`` picked so that no address of the machine is in it).

The machine's own services (PostgreSQL on 127.0.0.1:5432) listen on the root namespace's
loopback, which no namespace can reach: the kernel drops packets from a veth to 127.0.0.0/8
unless ``route_localnet`` and a NAT rule say otherwise, and this machine has no iptables/nft.
So each host gets a *relay*: a TCP forwarder in this process on ``10.N.i.1:PORT`` that connects
to ``127.0.0.1:PORT`` — what a host's route to a database server is, minus the routing. Without
root (or without ``ip``) :func:`namespaces_possible` says why, and the cluster falls back to
three addresses of 127.0.0.x.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import selectors
import shutil
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Host", "Relay", "hosts", "namespaces_possible"]

IP = shutil.which("ip") or "/usr/sbin/ip"


def _ip(*args: str) -> None:
    subprocess.run([IP, *args], check=True, capture_output=True, timeout=10)


def namespaces_possible() -> str:
    """'' when network namespaces can be made here, else the reason they cannot."""
    if os.geteuid() != 0:
        return "not root"
    if not os.path.exists(IP):
        return "no ip command (iproute2)"
    probe = f"tscprobe{secrets.token_hex(3)}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"ip netns add failed: {exc.stderr.decode().strip()}"
    _ip("netns", "del", probe)
    return ""


@dataclass(frozen=True)
class Host:
    """One host: its namespace ('' for the root namespace), its address, and the address the
    root namespace has on its link (where its relays listen and where nginx connects from)."""

    name: str
    address: str
    gateway: str

    def argv(self, *command: str) -> list[str]:
        """``command`` run inside this host."""
        return [IP, "netns", "exec", self.name, *command] if self.name else list(command)


def _free_subnet() -> int:
    """A second octet N with no address of the machine in 10.N.0.0/16."""
    used = subprocess.run([IP, "-4", "-o", "addr"], capture_output=True, text=True).stdout
    taken = {int(a.split(".")[1]) for a in used.split() if a.startswith("10.") and "/" in a}
    free = [n for n in range(64, 250) if n not in taken]
    return random.choice(free)


@contextlib.contextmanager
def hosts(count: int, use_namespaces: bool = True) -> Iterator[list[Host]]:
    """``count`` hosts, removed at the end; 127.0.0.(10+i) on this host's loopback when
    ``use_namespaces`` is false."""
    if not use_namespaces:
        yield [Host("", f"127.0.0.{10 + i}", "127.0.0.1") for i in range(count)]
        return
    tag = secrets.token_hex(2)
    subnet = _free_subnet()
    made: list[Host] = []
    try:
        for i in range(count):
            name, link = f"tsc{tag}-{i}", f"tsc{tag}h{i}"
            gateway, address = f"10.{subnet}.{i}.1", f"10.{subnet}.{i}.2"
            _ip("netns", "add", name)
            made.append(Host(name, address, gateway))
            _ip("link", "add", link, "type", "veth", "peer", "name", "eth0", "netns", name)
            _ip("addr", "add", f"{gateway}/24", "dev", link)
            _ip("link", "set", link, "up")
            inside = ["netns", "exec", name, IP]
            _ip(*inside, "addr", "add", f"{address}/24", "dev", "eth0")
            _ip(*inside, "link", "set", "eth0", "up")
            _ip(*inside, "link", "set", "lo", "up")
            _ip(*inside, "route", "add", "default", "via", gateway)
        yield made
    finally:
        for i, host in enumerate(made):
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("link", "del", f"tsc{tag}h{i}")
            with contextlib.suppress(subprocess.CalledProcessError):
                _ip("netns", "del", host.name)


class _Forward(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.server.target, timeout=5)  # type: ignore[attr-defined]
        except OSError:
            return
        with upstream, selectors.DefaultSelector() as selector:
            upstream.settimeout(None)
            pair = {self.request: upstream, upstream: self.request}
            for sock in pair:
                selector.register(sock, selectors.EVENT_READ)
            while True:
                for key, _ in selector.select():
                    try:
                        data = key.fileobj.recv(65536)
                        if not data:
                            return
                        pair[key.fileobj].sendall(data)
                    except OSError:
                        return


class Relay:
    """Connections to ``listen`` forwarded to ``target`` (a service on this host's loopback)."""

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        ipaddress.ip_address(listen[0])
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.server = socketserver.ThreadingTCPServer(listen, _Forward)
        self.server.daemon_threads = True
        self.server.target = target  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
