"""Every TABLESTREAM_* setting, declared once, parsed once, refused at start-up when wrong.

Each setting is one field of ``Settings``: its type, and in ``setting(...)`` its converter
(which names what is allowed), its default as environment text and one line of help; the
environment variable is ``TABLESTREAM_`` + the field's name unless given. The fields are
declared by topic in ``groups/`` (one dataclass per group) and joined here. ``SETTINGS`` is read
off those fields, so the CLI's ``--help``, the settings table in docs/settings.md and its test
cannot miss one. ``Settings.from_env`` is the only place the environment is read, and every
value, whatever its origin, goes through its converter and then the cross-field checks of
``checks.py``. ``to_env`` writes the settings back as environment text, which is how the
children of ``--processes`` get their parent's settings whole.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .checks import validate
from .converters import ConfigError
from .declare import Setting, declared, markdown_table
from .groups.access import AccessSettings
from .groups.postgres import PostgresSettings
from .groups.processes import ProcessSettings
from .groups.reliability import ReliabilitySettings
from .groups.sharing import SharingSettings
from .groups.sources import SourceSettings
from .groups.stream import CSV_NULLS, NDJSON_DECIMALS, StreamSettings
from .groups.waitress import WaitressSettings

__all__ = [
    "CSV_NULLS",
    "NDJSON_DECIMALS",
    "SETTINGS",
    "Setting",
    "Settings",
    "settings_markdown",
]


# A dataclass takes the fields of its bases from the last base to the first, so the groups are
# listed in reverse: the fields, and docs/settings.md, start with the sources and end with sharing.
@dataclass(frozen=True)
class Settings(
    SharingSettings,
    PostgresSettings,
    ReliabilitySettings,
    ProcessSettings,
    AccessSettings,
    WaitressSettings,
    StreamSettings,
    SourceSettings,
):
    """The service's configuration, validated; build it with ``from_env`` or ``from_mapping``.

    A setting missing from the input takes its default. The fields are declared by topic in
    ``groups/``.
    """

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every TABLESTREAM_* variable; raise ConfigError naming the first bad one."""
        environ = os.environ if environ is None else environ
        values = {s.attr: environ[s.env] for s in SETTINGS if s.env in environ}
        return cls.from_mapping(values, source="env")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], source: str = "config") -> Settings:
        """Build settings from attr-named values (strings are converted like env values)."""
        by_attr = {s.attr: s for s in SETTINGS}
        unknown = sorted(set(values) - set(by_attr))
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(sorted(by_attr))}"
            )
        parsed: dict[str, Any] = {}
        for attr, raw in {**{s.attr: s.default for s in SETTINGS}, **values}.items():
            setting = by_attr[attr]
            # Every value goes through its converter, whatever its type: {"threads": -3} is
            # refused like TABLESTREAM_THREADS=-3.
            text = raw if isinstance(raw, str) else setting.render(raw)
            try:
                parsed[attr] = setting.convert(text)
            except (TypeError, ValueError) as exc:
                name = setting.env if source == "env" else attr
                raise ConfigError(f"{name}={raw!r} {exc}") from None
        settings = cls(**parsed)
        validate(settings)
        return settings

    def to_env(self) -> dict[str, str]:
        """Every setting as environment text: what a child process needs to rebuild these
        exact settings with ``from_env`` (command-line flags included)."""
        return {s.env: s.render(getattr(self, s.attr)) for s in SETTINGS}

    def to_log(self) -> str:
        """Every setting as ``NAME=value`` for the start-up log: what this process really runs
        with, defaults included, quoted as a shell would take them back, a PostgreSQL DSN's
        password replaced by ``***``."""
        return " ".join(
            f"{env}={shlex.quote(_no_password(value))}" for env, value in self.to_env().items()
        )

    @property
    def effective_stream_slots(self) -> int:
        """Stream slots: as set, or the threads minus a reserve of up to 4 (at least 1 slot)."""
        if self.stream_slots:
            return self.stream_slots
        return max(1, self.threads - min(4, max(1, self.threads // 3)))


_PASSWORD = re.compile(r"(password\s*=\s*)('[^']*'|\S+)|(://[^:/@\s]*:)[^@\s]+(@)", re.IGNORECASE)


def _no_password(value: str) -> str:
    """A DSN (key=value or URL form) with its password shown as ``***``."""
    return _PASSWORD.sub(lambda m: f"{m[1]}***" if m[1] else f"{m[3]}***{m[4]}", value)


# Read off the fields: the one list of settings, in declaration order.
SETTINGS: tuple[Setting, ...] = declared(Settings)


def settings_markdown() -> str:
    """The settings table of docs/settings.md, one row per setting (``tablestream settings``)."""
    return markdown_table(SETTINGS)
