"""The settings by topic: one frozen dataclass of ``setting(...)`` fields per group, each in the
module a reader would look in (``stream.py`` for the chunk size, ``reliability.py`` for the
deadlines). ``config/settings.py`` joins them into the one ``Settings`` and lists them in the
order of docs/settings.md: sources, stream, waitress, access, processes, reliability, postgres,
sharing. A new setting goes at the place in its group where it should appear in that table.
"""
