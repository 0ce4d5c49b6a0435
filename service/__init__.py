"""tablestream: huge HTML tables streamed over HTTP, never held in memory.

``create_app`` is the app factory; it reads settings (or takes them), builds the table
catalogue and wires routes and error pages. Nothing is read from the environment after it
returns, so a bad setting stops start-up instead of failing the first request.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, request

from .access import Access, PeerMiddleware, install_access, read_proxy_secret
from .config import ConfigError, Settings
from .config.secretfile import read_secrets
from .errors import register_error_pages
from .observe.board import Board, Shelf
from .observe.instrumentation import install_metrics
from .observe.metrics import Metrics
from .observe.requestlog import REQUEST_ID_KEY, RequestLogMiddleware, stream_facts
from .observe.status import RecentStreams
from .query.keyset import Keysets
from .runtime import Runtime
from .security import install_security_headers
from .server.admission import REASONS, Admission
from .server.allocator import give_back_memory
from .server.door import Door
from .server.lag import PROCESS_LAG
from .server.watchdog import Watchdog
from .shared import ClientLeases, RedisBoard, SharedStore
from .shared.store import WHATS
from .sources import build_catalog
from .stream.markup import rows_html
from .stream.pacing import Pacers
from .stream.rowfilters import FILTERS as ROW_FILTERS
from .stream.rowtemplate import RowTemplates
from .views import PACERS_KEY, ROW_TEMPLATES_KEY, bp
from .views.tables import refusal_text, takes_a_slot

__all__ = ["ConfigError", "Settings", "__version__", "create_app", "template_folder"]

__version__ = "0.1.0"  # the one place: pyproject.toml reads it (dynamic version)


def template_folder() -> Path:
    """Where the templates are: inside the installed package, or ``templates/`` beside it."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):
        if (candidate / "table.html").is_file():
            return candidate
    raise RuntimeError(f"templates not found next to {here}; is the package installed whole?")


def create_app(config: Settings | Mapping[str, Any] | None = None) -> Flask:
    """Build the app. ``config`` is a Settings, a mapping of setting names, or None (env)."""
    if config is None:
        settings = Settings.from_env()
    elif isinstance(config, Settings):
        settings = config
    else:
        settings = Settings.from_mapping(config)

    # Read before anything starts: a missing or weak secret stops start-up (access/peer.py).
    secret = (
        read_proxy_secret(settings.auth_proxy_secret_file)
        if settings.auth_proxy_secret_file
        else None
    )
    templates = template_folder()
    app = Flask(
        __name__,
        template_folder=str(templates),
        static_folder=str(templates / "static"),
    )
    app.logger.setLevel(getattr(logging, settings.log_level.upper()))
    metrics = Metrics(settings.chunk_bytes, settings.prometheus_multiproc_dir)
    for reason in REASONS:  # every series exists from the start, at 0, so rate() works
        metrics.streams_rejected.labels(reason)
    watchdog = Watchdog(
        settings.write_timeout,
        min_rate=settings.min_send_rate,
        rate_window=settings.send_rate_window,
        marker_timeout=settings.cut_marker_timeout,
        on_idle=give_back_memory,
    )
    # Behind --processes, what a page asks may reach a sibling: the siblings share a board;
    # behind a balancer, another instance: the instances share Redis (shared/).
    board: Shelf | None = Board(settings.shared_dir) if settings.shared_dir else None
    store = _shared_store(settings, metrics)
    leases = None
    if store is not None:
        board = RedisBoard(store, board)
        leases = ClientLeases(store)
    catalog = build_catalog(settings)
    metrics.declare_tables(catalog)
    runtime = Runtime(
        settings=settings,
        catalog=catalog,
        metrics=metrics,
        watchdog=watchdog,
        admission=Admission(
            settings.effective_stream_slots,
            settings.streams_per_client,
            leases,
            max_lag=settings.admit_max_lag_ms / 1000,
            floor=settings.streams_always_admitted,
            per_second=settings.admit_per_second,
        ),
        access=Access(settings, metrics, catalog, store),
        keysets=_keysets(settings),
        recent=RecentStreams(board=board),
    )
    runtime.door = Door(
        runtime.admission,
        takes_a_slot(settings.small_rows),
        lambda rejected: refusal_text(rejected, settings),
        settings.retry_after,
        lambda reason: metrics.streams_rejected.labels(reason).inc(),
    )
    app.extensions["tablestream"] = runtime
    PROCESS_LAG.export_to(metrics.scheduling_lag)
    if settings.admit_max_lag_ms:
        PROCESS_LAG.start()  # one thread per process, measuring before the first stream
    runtime.observer_factories.append(lambda table: watchdog.observer(table, request.environ))
    runtime.observer_factories.append(lambda table: stream_facts(table, request.environ))
    runtime.observer_factories.append(
        lambda table: runtime.recent.observer(
            table, request.environ[REQUEST_ID_KEY], runtime.access.owner(request.environ)
        )
    )
    install_metrics(app, metrics, public_endpoint=settings.metrics_port == 0)
    install_access(app, runtime.access)
    install_security_headers(app)
    app.wsgi_app = RequestLogMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, filter_values=settings.log_filter_values
    )
    # Outermost: forwarded headers believed from the trusted proxy only (access/peer.py), so
    # the request log, per-client limits and the failure budget see the real client.
    app.wsgi_app = PeerMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        settings.trusted_proxy,
        settings.trusted_proxy_count,
        settings.trusted_proxy_headers,
        identity_headers=(settings.auth_user_header, settings.auth_groups_header),
        proxy_secret=secret,
        unproven=metrics.identity_headers_ignored.inc if secret is not None else None,
    )
    app.add_template_filter(rows_html)
    app.jinja_env.filters.update(ROW_FILTERS)
    app.register_blueprint(bp)
    register_error_pages(app)
    for page in ("table.html", "index.html", "error.html"):
        # Compiled now, not by the first request: the first page, and the first 503 of an
        # overload, pay no compile, and a broken template stops start-up.
        app.jinja_env.get_template(page)
    # Each table's own row template (tables/<name>.html; the demo database's tables also
    # tables/demo/<name>.html), compiled now: a broken one stops start-up.
    row_templates = RowTemplates(app.jinja_env, runtime.catalog)
    row_templates.compile_known(runtime.catalog)
    app.extensions[ROW_TEMPLATES_KEY] = row_templates
    # Pages kept near their reader's parser, never longer than a client may stall a stream.
    app.extensions[PACERS_KEY] = Pacers(settings.write_timeout, board)
    return app


def _shared_store(settings: Settings, metrics: Metrics) -> SharedStore | None:
    """Redis when ``TABLESTREAM_REDIS_URL`` is set; one that does not answer now is a warning
    (each instance's own limits meanwhile), never a reason not to start."""
    if not settings.redis_url:
        return None
    failures = metrics.shared_store_errors
    for what in WHATS:  # every series exists from the start, at 0, so rate() works
        failures.labels(what)
    try:
        store = SharedStore(
            settings.redis_url,
            settings.redis_prefix,
            settings.redis_timeout,
            lambda what: failures.labels(what).inc(),
        )
    except ImportError as exc:
        raise ConfigError(str(exc)) from None
    store.check()
    return store


def _keysets(settings: Settings) -> Keysets:
    """The signer of "next rows" links: the secret file's, or a random secret for this process
    (``tablestream serve`` says so in one line; ``--processes`` children are given a file)."""
    if settings.secret_file:
        return Keysets(read_secrets(settings.secret_file))
    return Keysets([secrets.token_bytes(32)])
