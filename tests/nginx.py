"""A real nginx (Debian's package) in front of a test server, from the shipped ops/nginx config.

The site file ``ops/nginx/tablestream.conf`` is used as it is, except for its two addresses
(listen and upstream), which point at free ports on 127.0.0.1. ``http10`` removes its
``proxy_http_version 1.1`` line: nginx then speaks its default HTTP/1.0 to the service, as most
copy-pasted configs do; ``edit`` changes the site file otherwise (an outer tier's config).
Everything nginx writes (pid, logs, temp files) stays under ``root``.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from tablestream.testing import free_port, wait_ready

from .servers import ROOT

__all__ = ["NGINX", "SITE", "Nginx", "site_config"]

SITE = ROOT / "ops" / "nginx" / "tablestream.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _replace_once(pattern: str, new: str, text: str) -> str:
    result, count = re.subn(pattern, new, text, flags=re.MULTILINE)
    if count != 1:
        raise ValueError(f"site file: expected one line matching {pattern!r}, found {count}")
    return result


def site_config(
    listen_port: int, upstream_port: int, http10: bool = False, site: Path = SITE
) -> str:
    """A shipped site file pointed at the test's ports (and, if asked, on HTTP/1.0)."""
    text = site.read_text(encoding="utf-8")
    text = _replace_once(r"^(\s*)listen 80;$", rf"\1listen 127.0.0.1:{listen_port};", text)
    text = _replace_once(
        r"^(\s*)server 127\.0\.0\.1:8080;$", rf"\1server 127.0.0.1:{upstream_port};", text
    )
    if http10:
        text = _replace_once(r"^\s*proxy_http_version 1\.1;\n", "", text)
    return text


class Nginx:
    """nginx in the foreground (``daemon off``) with its prefix, logs and temp files in ``root``."""

    def __init__(
        self,
        root: Path,
        upstream_port: int,
        http10: bool = False,
        edit: Callable[[str], str] | None = None,
        site: Path = SITE,
    ) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.error_log = root / "error.log"
        self.access_log = root / "access.log"
        text = site_config(self.port, upstream_port, http10, site)
        (root / "site.conf").write_text(edit(text) if edit is not None else text)
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
            f"    include {root / 'site.conf'};\n}}\n"
        )
        self.log = open(root / "nginx.out", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [NGINX, "-p", str(root), "-c", str(root / "nginx.conf"), "-e", str(self.error_log)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_ready(self.url, timeout=10, proc=self.proc)
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
