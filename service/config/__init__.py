"""Settings: every ``TABLESTREAM_*`` variable declared once as a field (by topic in ``groups/``,
joined into ``Settings`` in ``settings.py``; the declaration helpers in ``declare.py``), parsed
by a named converter (``converters.py``), checked across settings (``checks.py``), refused at
start-up."""

from .converters import ConfigError
from .settings import SETTINGS, Setting, Settings, settings_markdown

__all__ = ["SETTINGS", "ConfigError", "Setting", "Settings", "settings_markdown"]
