"""Read a streamed page back into data: header cells, body rows, and the success footer."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

__all__ = ["ParsedTable", "parse_table"]


@dataclass
class ParsedTable:
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    rows_sent: int | None = None  # data-rows-sent of the success footer; None when absent
    error_marker: bool = False


class _Parser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.table = ParsedTable()
        self._in_table = False
        self._section = ""
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("id") == "ts-table":
            self._in_table = True
        elif self._in_table and tag in ("thead", "tbody"):
            self._section = tag
        elif self._in_table and tag == "tr":
            self._row = []
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif tag == "footer" and a.get("id") == "ts-complete":
            self.table.rows_sent = int(a["data-rows-sent"] or "-1")
        if a.get("data-stream-error"):
            self.table.error_marker = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif self._in_table and tag in ("td", "th") and self._cell is not None:
            assert self._row is not None
            self._row.append("".join(self._cell))
            self._cell = None
        elif self._in_table and tag == "tr" and self._row is not None:
            if self._section == "thead":
                self.table.columns = self._row
            else:
                self.table.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def handle_comment(self, data: str) -> None:
        if "tablestream:error" in data:
            self.table.error_marker = True


def parse_table(html: str) -> ParsedTable:
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.table
