"""A real nginx (Debian's package) in front of a test server, from the shipped ops/nginx config.

The shipped files are used as they are, except for their addresses: the upstream file
``ops/nginx/tablestream-upstream.conf`` (included once) points at the test server, and each site
file (``ops/nginx/tablestream.conf`` by default; several in one nginx with ``sites``, as the
combined deployment of docs/production.md runs them) listens on a free port of its own on
127.0.0.1. ``http10`` removes a site's ``proxy_http_version 1.1`` line: nginx then speaks its
default HTTP/1.0 to the service, as most copy-pasted configs do; ``edit`` changes a site file
otherwise (an outer tier's config, the sign-in's address). Everything nginx writes (pid, logs,
temp files) stays under ``root``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tablestream.testing import free_port, wait_ready

from .servers import ROOT

__all__ = ["NGINX", "SITE", "SSO_SITE", "UPSTREAM", "Nginx", "Site", "site_config"]

SITE = ROOT / "ops" / "nginx" / "tablestream.conf"
SSO_SITE = ROOT / "ops" / "nginx" / "tablestream-sso.conf"
UPSTREAM = ROOT / "ops" / "nginx" / "tablestream-upstream.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _replace_once(pattern: str, new: str, text: str) -> str:
    result, count = re.subn(pattern, new, text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"site file: expected one line matching {pattern!r}, found {count}")
    return result


def site_config(listen_port: int, http10: bool = False, site: Path = SITE) -> str:
    """A shipped site file listening on the test's port (and, if asked, on HTTP/1.0)."""
    text = site.read_text(encoding="utf-8")
    text = _replace_once(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{listen_port};", text)
    if http10:
        text = _replace_once(r"^\s*proxy_http_version 1\.1;\n", "", text)
    return text


def upstream_config(upstream_port: int) -> str:
    """The shipped upstream file pointed at the test server."""
    return _replace_once(
        r"^(\s*)server 127\.0\.0\.1:8080;$",
        rf"\1server 127.0.0.1:{upstream_port};",
        UPSTREAM.read_text(encoding="utf-8"),
    )


@dataclass(frozen=True)
class Site:
    """One shipped site file in a test nginx, and how the test changes it (if at all)."""

    path: Path = SITE
    edit: Callable[[str], str] | None = None


class Nginx:
    """nginx in the foreground (``daemon off``) with its prefix, logs and temp files in ``root``.

    ``sites`` run together in this one nginx, each on its own port (``ports``, ``urls``, in
    order); without it, the one ``site`` changed by ``edit``. ``port`` and ``url`` are the first
    site's. ``upstream`` is a whole upstream file instead of the shipped one pointed at
    ``upstream_port`` (a cluster's three servers)."""

    def __init__(
        self,
        root: Path,
        upstream_port: int,
        http10: bool = False,
        edit: Callable[[str], str] | None = None,
        site: Path = SITE,
        sites: Sequence[Site] = (),
        upstream: str | None = None,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        sites = sites or (Site(site, edit),)
        self.ports = [free_port() for _ in sites]
        self.urls = [f"http://127.0.0.1:{port}" for port in self.ports]
        self.port, self.url = self.ports[0], self.urls[0]
        self.error_log = root / "error.log"
        self.access_log = root / "access.log"
        (root / "upstream.conf").write_text(upstream or upstream_config(upstream_port))
        includes = [root / "upstream.conf"]
        for n, (one, port) in enumerate(zip(sites, self.ports, strict=True)):
            text = site_config(port, http10, one.path)
            includes.append(root / f"site-{n}.conf")
            includes[-1].write_text(one.edit(text) if one.edit is not None else text)
        temp = "\n".join(
            f"    {kind}_temp_path {root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        user = "user root root;\n" if os.geteuid() == 0 else ""  # workers can read tmp as root
        (root / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {root / 'nginx.pid'};\n"
            f"error_log {self.error_log} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log {self.access_log};\n{temp}\n"
            + "".join(f"    include {path};\n" for path in includes)
            + "}\n"
        )
        self.log = open(root / "nginx.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(self.error_log)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            for url in self.urls:
                wait_ready(url, timeout=10, proc=self.proc)
        except Exception:
            self.stop()
            raise

    def temp_bytes(self) -> int:
        """Bytes in nginx's proxy temp files now: a response buffered for a slow client.

        nginx unlinks a temp file as soon as it has opened it, so the files are found through
        the workers' open descriptors, not in the directory.
        """
        prefix = str(self.root / "proxy")
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        total = 0
        for worker in children.split():
            for fd in Path(f"/proc/{worker}/fd").iterdir():
                with contextlib.suppress(OSError):  # closed meanwhile
                    if os.readlink(fd).startswith(prefix):
                        total += os.stat(fd).st_size
        return total

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown: streams in flight are cut
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
