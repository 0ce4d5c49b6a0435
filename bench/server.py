"""The bench server: the production app, settings from the environment, plus bench/variants
and the synthetic table with a row template of its own (``synthetic_rt``) or hand-written rows
(``synthetic_hand``).

Served exactly as ``tablestream serve`` serves (same waitress options and allocator set-up),
so the service's own route is measured as users run it. With ``BENCH_CELLS=before`` the
sources read and format cells as they did before issue 17 (``bench/before.py``).
"""

from __future__ import annotations

import logging
import os
import sys

from tablestream import ConfigError, Settings, create_app
from tablestream.server.cli import serve_app

from .variants import bp, install_row_template_tables


def main() -> int:
    if os.environ.get("BENCH_CELLS") == "before":
        from .before import install

        install()
    try:
        settings = Settings.from_env()
        app = create_app(settings)
    except ConfigError as exc:
        print(f"bench server: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=settings.log_level.upper())
    app.register_blueprint(bp)
    install_row_template_tables(app, settings.synthetic_rows)
    return serve_app(app, settings)


if __name__ == "__main__":
    sys.exit(main())
