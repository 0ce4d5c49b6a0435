"""The door: who a request is, decided before any view runs; refused with 401/403/429.

With neither ``TABLESTREAM_TOKENS_FILE`` nor ``TABLESTREAM_AUTH_POLICY_FILE`` set the service is
open, as it always was, and this module does nothing. With either, every URL except
``/healthz`` and the static CSS/JS needs a caller:

- ``Authorization: Bearer <token>`` whose hash is in the tokens file (``tokens.py``), or
- the authenticating proxy's user header, believed only from ``TABLESTREAM_TRUSTED_PROXY``.

No or bad credentials: 401 with ``WWW-Authenticate: Bearer`` (RFC 6750; ``error="invalid_token"``
when a token was given). A caller without the ``metrics`` scope gets 403 from ``/metrics``, and
``/readyz`` tells it only "ready" or "not ready". What a caller may *read* is the views'
business (``readable``): a table it may not read is a 404 exactly like a table that does not
exist, so nothing can be enumerated.

The credential is checked first and a valid one is always let in. Every refusal is counted in
``tablestream_auth_failures_total{reason}`` (a fixed set of reasons); only a credential that was
presented and wrong (``malformed``, ``invalid``, ``expired``) spends from the client address's
failure budget (``budget.py``), and once that is spent such failures are 429 + ``Retry-After``
(``throttled``) instead of 401. A request without credentials guesses nothing and spends
nothing, so no stranger sharing an address can lock anyone out; ``/healthz`` and ``/readyz``
are never refused (a bad token on ``/readyz`` gets the anonymous answer). The token itself is
never logged, never in a label, never in a page: messages name only what was wrong.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, NoReturn

from flask import Flask, request
from werkzeug.exceptions import Forbidden, TooManyRequests, Unauthorized

from ..config import ConfigError, Settings
from ..observe.requestlog import CALLER_KEY
from ..shared.store import SharedStore
from .budget import budget_for
from .grants import Caller, GrantError, ServedColumns
from .peer import FROM_TRUSTED_PROXY_KEY, environ_key
from .policy import ProxyPolicy
from .tokens import TokenFile

__all__ = ["CALLER_KEY", "REASONS", "Access", "install_access"]

log = logging.getLogger("tablestream.access")

REASONS = ("missing", "malformed", "invalid", "expired", "insufficient_scope", "throttled")
"""Why a request was refused: the only values of the ``reason`` label."""

OPEN_ENDPOINTS = frozenset({"tables.healthz", "static"})
SOFT_ENDPOINTS = frozenset({"tables.readyz"})  # open, but says more to a caller with a scope
METRICS_ENDPOINT = "metrics_endpoint"

_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")
_USER = re.compile(r"[^\x00-\x1f\x7f]{1,256}")


class _Refused(Unauthorized):
    def __init__(self, description: str, error: str | None) -> None:
        super().__init__(description)
        self._challenge = 'Bearer realm="tablestream"' + (f', error="{error}"' if error else "")

    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", self._challenge)]


class _NoScope(Forbidden):
    def get_headers(self, *args: Any, **kwargs: Any) -> list[tuple[str, str]]:
        challenge = 'Bearer realm="tablestream", error="insufficient_scope", scope="metrics"'
        return [*super().get_headers(*args, **kwargs), ("WWW-Authenticate", challenge)]


class _Bad(Exception):
    """A credential was presented and is wrong: why (a ``REASONS`` value), for whom, what to say."""

    def __init__(self, reason: str, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.reason, self.message, self.error = reason, message, error


class Access:
    """The access control of one app, built from settings; ``enabled`` is False when open.

    ``catalog`` (table name → table with ``columns()``) is what hide entries are checked
    against; ``metrics`` gives the failure counter and the broken-file gauge; ``store`` (Redis,
    when instances share one) keeps the failure budget across instances.
    """

    def __init__(
        self,
        settings: Settings,
        metrics: Any,
        catalog: Mapping[str, Any],
        store: SharedStore | None = None,
    ) -> None:
        served = ServedColumns(catalog, lambda table: catalog[table].columns())
        broken = metrics.access_file_broken
        for file in ("tokens", "policy"):  # both series exist, at 0: a file not set is not broken
            broken.labels(file).set(0)
        try:
            self.tokens = (
                TokenFile(settings.tokens_file, served, broken) if settings.tokens_file else None
            )
            self.policy = (
                ProxyPolicy(settings.auth_policy_file, served, broken)
                if settings.auth_policy_file
                else None
            )
        except GrantError as exc:
            raise ConfigError(str(exc)) from None
        self.enabled = self.tokens is not None or self.policy is not None
        self._user_key = environ_key(settings.auth_user_header)
        self._groups_key = environ_key(settings.auth_groups_header)
        self.budget = budget_for(
            settings.auth_failures_per_minute if self.enabled else 0, settings.shared_dir, store
        )
        self._failures = failures = metrics.auth_failures
        for reason in REASONS:  # every series exists from the start, at 0, so rate() works
            failures.labels(reason)

    def request_reload(self) -> None:
        """SIGHUP: read the tokens and policy files again before the next request's check."""
        for watched in (self.tokens, self.policy):
            if watched is not None:
                watched.request_reload()

    def identify(self, environ: Mapping[str, Any]) -> Caller | None:
        """The caller a request's credentials name, None if it brings none; _Bad if wrong."""
        header = environ.get("HTTP_AUTHORIZATION")
        if header is not None:
            return self._bearer(header)
        if self.policy is not None and environ.get(FROM_TRUSTED_PROXY_KEY):
            user = environ.get(self._user_key, "").strip()
            if user:
                if not _USER.fullmatch(user):
                    raise _Bad("malformed", "The proxy's user header is malformed.")
                groups = [g.strip() for g in environ.get(self._groups_key, "").split(",")]
                return self.policy.caller(user, [g for g in groups if g])
        return None

    def _bearer(self, header: str) -> Caller:
        scheme, _, credentials = header.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not _TOKEN68.fullmatch(credentials):
            raise _Bad(
                "malformed", "The Authorization header is not 'Bearer <token>'.", "invalid_request"
            )
        if self.tokens is None:
            raise _Bad("invalid", "This service takes no API tokens.", "invalid_token")
        entry, expired = self.tokens.find(credentials)
        if entry is None:
            raise _Bad("invalid", "The token is not valid.", "invalid_token")
        if expired:
            raise _Bad("expired", f"The token {entry.name!r} has expired.", "invalid_token")
        return Caller(name=entry.name, via="token", grants=(entry.grant,))

    def require(self, environ: Mapping[str, Any]) -> Caller:
        """The request's caller; 401 without one, 429 for a wrong one over its budget."""
        try:
            caller = self.identify(environ)
        except _Bad as bad:
            self._fail(environ.get("REMOTE_ADDR", ""), bad)
        if caller is None:
            self._failures.labels("missing").inc()  # no guess made: nothing spent
            raise _Refused(
                "This service needs credentials: send 'Authorization: Bearer <token>'"
                + (" or sign in through the proxy" if self.policy is not None else "")
                + ".",
                None,
            )
        return caller

    def _fail(self, client: str, bad: _Bad) -> NoReturn:
        wait = self.budget.fail(client)
        self._failures.labels("throttled" if wait else bad.reason).inc()
        if wait:
            raise TooManyRequests(
                f"Too many failed attempts to authenticate from this address; try again in "
                f"{wait} s.",
                retry_after=wait,
            )
        raise _Refused(bad.message, bad.error)

    def soft_identify(self, environ: Mapping[str, Any]) -> Caller | None:
        """For /readyz: the caller if its credentials are good, else anonymous; never refused."""
        try:
            return self.identify(environ)
        except _Bad:
            return None

    # -- what the views ask; fail closed: with access on, no caller may read nothing

    def caller(self, environ: Mapping[str, Any]) -> Caller | None:
        return environ.get(CALLER_KEY) if self.enabled else None

    def may_read(self, environ: Mapping[str, Any], table: str) -> bool:
        if not self.enabled:
            return True
        caller = environ.get(CALLER_KEY)
        return caller is not None and caller.may_read(table)

    def hidden(self, environ: Mapping[str, Any], table: str) -> frozenset[str]:
        caller = self.caller(environ)
        return caller.hidden(table) if caller is not None else frozenset()

    def may_see_internals(self, environ: Mapping[str, Any]) -> bool:
        """/readyz's reasons name tables: only for an open service or the metrics scope."""
        caller = self.caller(environ)
        return not self.enabled or (caller is not None and caller.has_scope("metrics"))

    def owner(self, environ: Mapping[str, Any]) -> str | None:
        """Whose stream a request starts, for /streams/<id>: the caller's name and way in."""
        caller = self.caller(environ)
        return f"{caller.via}:{caller.name}" if caller is not None else None

    def no_scope(self) -> _NoScope:
        self._failures.labels("insufficient_scope").inc()
        return _NoScope("This token or user may not read the metrics (scope 'metrics').")


def install_access(app: Flask, access: Access) -> None:
    """Check every request's credentials before its view runs (a no-op when open)."""
    if not access.enabled:
        return

    @app.before_request
    def gate() -> None:
        endpoint = request.endpoint
        if endpoint in OPEN_ENDPOINTS:
            return
        environ = request.environ
        if endpoint in SOFT_ENDPOINTS:
            environ[CALLER_KEY] = access.soft_identify(environ)
            return
        caller = access.require(environ)
        environ[CALLER_KEY] = caller
        if endpoint == METRICS_ENDPOINT and not caller.has_scope("metrics"):
            raise access.no_scope()
