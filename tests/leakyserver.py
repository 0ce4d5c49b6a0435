"""A deliberately leaking tablestream: the load verdict's negative control, used only by tests.

The real app behind a middleware that joins every table page before sending it and keeps it
(what a ``render_template`` variant with a page cache would do), so memory grows with the rows
per stream and with time. Nothing in ``service/`` knows about it; ``tests/test_loadtest.py``
runs it as ``python -m tests.leakyserver serve`` and expects the verdict to fail.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from typing import Any

import waitress

from tablestream import create_app
from tablestream.config import Settings
from tablestream.server.connections import waitress_options

__all__ = ["leaking"]


def leaking(app: Callable[..., Iterable[bytes]]) -> Callable[..., Iterable[bytes]]:
    """Wrap ``app`` so each /tables/ page is joined in memory and never released."""
    kept: list[bytes] = []

    def leaky_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = app(environ, start_response)
        if not environ.get("PATH_INFO", "").startswith("/tables/"):
            return body
        try:
            page = b"".join(body)
        finally:
            if hasattr(body, "close"):
                body.close()
        kept.append(page)
        return [page]

    return leaky_app


def main(argv: list[str]) -> int:
    if argv != ["serve"]:
        print("usage: python -m tests.leakyserver serve", file=sys.stderr)
        return 2
    settings = Settings.from_env(os.environ)
    waitress.serve(leaking(create_app(settings)), **waitress_options(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
