"""How a setting is declared: ``setting(...)`` on a ``Settings`` field, read back as ``Setting``.

A field carries its converter, its default as environment text and its help in the dataclass
field's metadata; ``declared`` turns the fields into ``Setting`` rows, from which the CLI help,
the settings table of docs/settings.md and the environment round trip of ``to_env`` are made.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["Setting", "declared", "markdown_table", "setting"]


@dataclass(frozen=True)
class Setting:
    attr: str
    env: str
    convert: Callable[[str], Any]
    default: str
    help: str

    @property
    def allowed(self) -> str:
        return getattr(self.convert, "allowed", "")

    def render(self, value: Any) -> str:
        """``value`` as its environment text, which ``convert`` reads back to the same value."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, tuple):
            return ",".join("=".join(v) if isinstance(v, tuple) else str(v) for v in value)
        return str(value)


def setting(convert: Callable[[str], Any], default: str, help: str, env: str = "") -> Any:
    """Declare one setting as a ``Settings`` field: its converter, default text and help."""
    return field(metadata={"convert": convert, "default": default, "help": help, "env": env})


def declared(cls: type) -> tuple[Setting, ...]:
    """The settings a dataclass declares with ``setting``, in declaration order; the variable is
    ``TABLESTREAM_`` + the field's name unless the field names another."""
    return tuple(
        Setting(
            f.name,
            f.metadata["env"] or "TABLESTREAM_" + f.name.upper(),
            f.metadata["convert"],
            f.metadata["default"],
            f.metadata["help"],
        )
        for f in fields(cls)
    )


def markdown_table(settings: tuple[Setting, ...]) -> str:
    """One markdown row per setting: variable, default, what is allowed, meaning."""
    rows = ["| Variable | Default | Allowed | Meaning |", "|---|---|---|---|"]
    for s in settings:
        default = f"`{s.default}`" if s.default else "(empty)"
        rows.append(f"| `{s.env}` | {default} | {s.allowed} | {s.help} |")
    return "\n".join(rows) + "\n"
