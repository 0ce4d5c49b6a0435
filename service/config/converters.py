"""Converters: environment text → a checked value, each saying what it allows.

Every setting is parsed by one of these (waitress's ``adjustments.py`` does the same with
``asbool`` and friends). A converter raises ``ValueError`` with the part of the message after
the setting's name ("is not an integer; expected ..."), and carries ``allowed``, the text the
settings table and ``--help`` show.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from waitress.adjustments import KNOWN_PROXY_HEADERS

__all__ = [
    "KIB",
    "MIB",
    "ConfigError",
    "boolean",
    "choice",
    "csv_tables",
    "integer",
    "number",
    "pg_tables",
    "proxy_address",
    "proxy_headers",
    "redis_key_prefix",
    "redis_url",
    "text",
]

KIB = 1024
MIB = 1024 * KIB


class ConfigError(ValueError):
    """A setting has a value that cannot be used; the message names it and what is allowed."""


def _ranged(parse: Callable[[str], Any], kind: str, allowed: str, low: Any, high: Any):
    """A converter that parses with ``parse`` and keeps the value within [low, high]."""

    def convert(text: str) -> Any:
        try:
            value = parse(text.strip())
        except ValueError:
            raise ValueError(f"is not {kind}; expected {allowed}") from None
        if not low <= value <= high:
            raise ValueError(f"is out of range; expected {allowed}")
        return value

    convert.allowed = allowed  # type: ignore[attr-defined]
    return convert


def _unit(unit: str) -> str:
    return f" ({unit})" if unit else ""


def integer(low: int, high: int, unit: str = "") -> Callable[[str], int]:
    """A converter for a whole number in [low, high] (``_`` allowed as in ``1_000``)."""
    allowed = f"an integer{_unit(unit)} between {low} and {high}"
    return _ranged(lambda t: int(t.replace("_", "")), "an integer", allowed, low, high)


def number(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """A converter for a decimal number in [low, high]."""
    allowed = f"a number{_unit(unit)} between {low:g} and {high:g}"
    return _ranged(float, "a number", allowed, low, high)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def boolean(text: str) -> bool:
    """A converter that reads the usual spellings of yes and no (and refuses anything else)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("is not a boolean; expected one of 1/0, true/false, yes/no, on/off")


boolean.allowed = "1/0, true/false, yes/no, on/off"  # type: ignore[attr-defined]


def choice(*values: str) -> Callable[[str], str]:
    """A converter for one of ``values``, spelled exactly (``\\N`` and ``NULL`` differ)."""
    allowed = "one of " + ", ".join(values)

    def convert(text: str) -> str:
        if text not in values:
            raise ValueError(f"is not a choice here; expected {allowed}")
        return text

    convert.allowed = allowed  # type: ignore[attr-defined]
    return convert


def text(value: str) -> str:
    return value.strip()


text.allowed = "any text"  # type: ignore[attr-defined]

TABLE_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def csv_tables(value: str) -> tuple[tuple[str, str], ...]:
    """``NAME=PATH[,NAME=PATH...]``: each CSV file served as a table under NAME."""
    pairs: list[tuple[str, str]] = []
    for item in value.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, path = item.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not path:
            raise ValueError(f"has an entry {item!r} that is not NAME=PATH")
        if not TABLE_NAME.match(name):
            raise ValueError(f"has a table name {name!r} that is not letters, digits, _ . -")
        pairs.append((name, path))
    return tuple(pairs)


csv_tables.allowed = "NAME=PATH[,NAME=PATH...]"  # type: ignore[attr-defined]

_PG_NAME = r"[A-Za-z_][A-Za-z0-9_$]{0,62}"
_PG_ENTRY = re.compile(rf"^(?:{_PG_NAME}\.)?(?:{_PG_NAME}|\*)$")


def pg_tables(value: str) -> tuple[str, ...]:
    """``TABLE``, ``SCHEMA.TABLE`` or ``SCHEMA.*``, comma-separated."""
    entries = tuple(item.strip() for item in value.split(",") if item.strip())
    for entry in entries:
        if not _PG_ENTRY.match(entry):
            raise ValueError(
                f"has an entry {entry!r} that is not TABLE, SCHEMA.TABLE or SCHEMA.* "
                "(plain identifiers: letters, digits, _ and $)"
            )
    return entries


pg_tables.allowed = "TABLE, SCHEMA.TABLE or SCHEMA.*, comma-separated"  # type: ignore[attr-defined]


def proxy_address(value: str) -> str:
    """The one address (as waitress sees REMOTE_ADDR) whose forwarded headers are believed."""
    value = value.strip()
    if value in ("", "*"):
        return value
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(
            "is not an IP address; expected the proxy's address as the service sees it "
            "(e.g. 127.0.0.1 or ::1), * for any peer, or empty for no trusted proxy"
        ) from None


proxy_address.allowed = "an IP address, * (any peer), or empty"  # type: ignore[attr-defined]


def proxy_headers(value: str) -> tuple[str, ...]:
    """Forwarded headers to believe from the trusted proxy, names as waitress knows them."""
    names = tuple(
        dict.fromkeys(n.strip().lower() for n in value.replace(",", " ").split() if n.strip())
    )
    unknown = [name for name in names if name not in KNOWN_PROXY_HEADERS]
    if unknown:
        raise ValueError(
            f"names {', '.join(unknown)}, which waitress does not know; expected some of "
            f"{', '.join(sorted(KNOWN_PROXY_HEADERS))}"
        )
    if "forwarded" in names and len(names) > 1:
        raise ValueError("mixes forwarded with x-forwarded-*; expected one kind of header")
    return names


proxy_headers.allowed = (  # type: ignore[attr-defined]
    f"space-separated, of {', '.join(sorted(KNOWN_PROXY_HEADERS))}; forwarded alone"
)


def redis_url(value: str) -> str:
    """Where Redis is: redis://, rediss:// (TLS) or unix:// as redis-py reads it; empty: none."""
    value = value.strip()
    if value and not re.match(r"^(redis|rediss|unix)://\S+$", value):
        raise ValueError(
            "is not a Redis URL; expected redis://[:password@]host[:port][/db], rediss://... "
            "(TLS) or unix:///path/to/socket, or empty for none"
        )
    return value


redis_url.allowed = "redis://host[:port][/db], rediss://..., unix://path, or empty"  # type: ignore[attr-defined]


def redis_key_prefix(value: str) -> str:
    """Printable text without spaces, at most 64 characters: the start of every key."""
    value = value.strip()
    if not re.fullmatch(r"[!-~]{1,64}", value):
        raise ValueError("is not a key prefix; expected 1 to 64 printable characters, no spaces")
    return value


redis_key_prefix.allowed = "1 to 64 printable characters, no spaces"  # type: ignore[attr-defined]


_HEADER_NAME = re.compile(r"[A-Za-z0-9-]{1,64}")
_RESERVED_HEADERS = {h.lower() for h in KNOWN_PROXY_HEADERS} | {"authorization", "x-forwarded-by"}


def header_name(value: str) -> str:
    """An HTTP header name (letters, digits, dashes) that is not a forwarding header."""
    value = value.strip()
    if not _HEADER_NAME.fullmatch(value):
        raise ValueError(
            "is not a header name; expected letters, digits and dashes, e.g. X-Forwarded-User"
        )
    if value.lower() in _RESERVED_HEADERS:
        raise ValueError(
            "is a header the service reads for something else; expected another, e.g. "
            "X-Forwarded-User"
        )
    return value
