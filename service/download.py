"""``tablestream download URL FILE``: a CSV or NDJSON download that survives a drain.

A 5M-row CSV takes longer than a rolling deploy's grace, so the server cuts it after whole rows
and ends it with a marker that carries the *resume point*: the URL that continues the same
query after the last row sent (docs/formats.md, "Cut markers"). A browser or curl leaves the
user with a truncated file and a row count to start over from; this client follows the marker
instead: it truncates the marker off the file, asks for the resume URL (a CSV's header line
then comes again and is dropped), and writes on, so the file ends byte for byte as an
uninterrupted download would have. It exits non-zero, saying why, when it cannot: the marker
says there is no resume point, the stream was cut before its marker arrived, the server refused
(401, 403, 404, 400), or the server stayed unreachable or busy for every attempt (with backoff).

A client, not part of the server: standard library only (``urllib``), no Flask. The token is
read from ``TABLESTREAM_TOKEN`` (never a command-line argument, which ``ps`` shows to every
user) and sent only to the origin of the URL given. Progress goes to stderr on a terminal; one
summary line goes to stderr at the end either way, with the reason on failure (what it counts:
downloadtally.py).
"""

from __future__ import annotations

import html
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
import zlib
from typing import BinaryIO, TextIO
from urllib.parse import urljoin, urlsplit

from .downloadtally import Download, csv_records

__all__ = ["TOKEN_ENV", "Download", "DownloadFailed", "download"]

TOKEN_ENV = "TABLESTREAM_TOKEN"

# Exit codes: 0 complete; 2 a bad URL or a reply that is not CSV/NDJSON; 3 refused by the
# server (4xx); 4 cut with no resume point; 5 attempts exhausted.
BAD_URL, REFUSED, NO_RESUME, EXHAUSTED = 2, 3, 4, 5

_TYPES = {"text/csv": "csv", "application/x-ndjson": "ndjson"}
_MARKERS = {
    "csv": re.compile(rb"\r\n# tablestream:error after \d+ rows[^\r\n]*\r\n\Z"),
    "ndjson": re.compile(rb'\n\{"tablestream_error": [^\n]*\}\n\Z'),
}
_TAIL_BYTES = 256 * 1024  # a marker is one line: its URL is bounded by the request's own
_RETRY_STATUS = {429, 502, 503, 504}
_MAX_WAIT = 30.0


class DownloadFailed(Exception):
    """It cannot complete: ``code`` is the exit status, ``state`` what was written till then."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.state: Download | None = None


class _Cut(Exception):
    """The body ended without its terminating chunk (or gzip trailer)."""


def _resume_point(fmt: str, marker: bytes) -> str | None:
    if fmt == "ndjson":
        resume = json.loads(marker).get("resume")
        return resume if isinstance(resume, str) else None
    found = re.search(rb"; resume: (\S+)\r\n\Z", marker)
    return found.group(1).decode("ascii") if found else None


def _message(error: urllib.error.HTTPError) -> str:
    """The server's one-line reason from its error page, else the status line."""
    text = error.read(65536).decode("utf-8", "replace")
    found = re.search(r'class="ts-error-message">(.*?)</p>', text, re.S)
    detail = re.sub(r"<[^>]+>", "", found.group(1)) if found else ""
    return f"{error.code} {error.reason}" + (f": {html.unescape(detail)}" if detail else "")


class _Client:
    def __init__(
        self, url: str, out: BinaryIO, state: Download, token: str | None, timeout: float
    ) -> None:
        self.origin = urlsplit(url)[:2]
        self.out, self.state, self.token, self.timeout = out, state, token, timeout
        self.fmt = ""
        self.header = b""  # a CSV's header line, written once
        self._first = b""  # a CSV's first bytes, until its header line is whole
        self._quoted = False  # the bytes written so far end inside a quoted CSV cell
        self.progress: TextIO | None = None
        self._shown = 0.0

    def open(self, url: str) -> http.client.HTTPResponse:
        headers = {
            "Accept": "text/csv, application/x-ndjson;q=0.9",
            "Accept-Encoding": "gzip",
        }
        if self.token and urlsplit(url)[:2] == self.origin:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, headers=headers)
        return urllib.request.urlopen(request, timeout=self.timeout)

    def body(self, response: http.client.HTTPResponse, resumed: bool) -> None:
        """Write ``response``'s body on; _Cut when it ends without its end (chunk or trailer)."""
        mimetype = response.headers.get_content_type()
        fmt = _TYPES.get(mimetype)
        if fmt is None or (self.fmt and fmt != self.fmt):
            raise DownloadFailed(BAD_URL, f"the reply is {mimetype}, expected CSV or NDJSON")
        self.fmt = fmt
        gzipped = response.headers.get("Content-Encoding", "") == "gzip"
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
        skip = len(self.header) if resumed and fmt == "csv" else 0
        head = b""
        cut = ""
        while True:
            try:
                data = response.read1(65536)
            except http.client.IncompleteRead as exc:
                data, cut = exc.partial, "the body ended without its last chunk"
            except (OSError, http.client.HTTPException) as exc:
                data, cut = b"", f"{type(exc).__name__}: {exc}"
            ended = not data
            if inflate is not None:
                data = inflate.decompress(data)
            if skip:  # the resumed CSV's header line: checked, then dropped
                head += data
                if len(head) < skip and not (cut or ended):
                    continue
                if head[:skip] != self.header:
                    raise DownloadFailed(NO_RESUME, "the resumed stream has another header line")
                data, skip = head[skip:], 0
            if fmt == "csv" and not self.header and data:
                self._first += data
                if b"\r\n" in self._first:
                    self.header = self._first.split(b"\r\n", 1)[0] + b"\r\n"
            self._write(data)
            if cut or ended:
                break
        if inflate is not None and not inflate.eof and not cut:
            cut = "the gzip stream ended without its trailer"
        if cut:
            raise _Cut(cut)

    def _write(self, data: bytes) -> None:
        if not data:
            return
        self.out.write(data)
        self.state.bytes += len(data)
        self.state.rows += self._records(data)
        if self.progress is not None and time.monotonic() - self._shown > 0.5:
            self._shown = time.monotonic()
            seconds = max(self._shown - self.state.started, 1e-3)
            self.progress.write(
                f"\r{self._rows():,} rows  {self.state.bytes / seconds / 1e6:.1f} MB/s  "
                f"{self.state.resumes} resumes "
            )
            self.progress.flush()

    def _records(self, data: bytes) -> int:
        if self.fmt != "csv":
            return data.count(b"\n")
        records, self._quoted = csv_records(data, self._quoted)
        return records

    def _rows(self) -> int:
        return self.state.rows - (1 if self.header else 0)

    def keep_marker(self, marker: bytes) -> None:
        """Write a marker back (no resume point): the file shows it is incomplete, as sent."""
        self.out.write(marker)
        self.state.bytes += len(marker)

    def strip_marker(self) -> bytes | None:
        """Truncate the file's trailing marker; its bytes, or None when there is none."""
        self.out.flush()
        size = self.out.tell()
        start = max(0, size - _TAIL_BYTES)
        with open(self.state.path, "rb") as written:
            written.seek(start)
            tail = written.read()
        found = _MARKERS[self.fmt or "csv"].search(tail)
        if found is None:
            return None
        marker = found.group()
        self.out.truncate(start + found.start())
        self.out.seek(start + found.start())
        self.state.bytes -= len(marker)
        # The marker follows whole rows: it was counted from outside quotes, and after it is
        # gone the file ends outside them.
        self.state.rows -= (
            csv_records(marker, False)[0] if self.fmt == "csv" else marker.count(b"\n")
        )
        self._quoted = False
        return marker


def download(
    url: str,
    path: str,
    *,
    token: str | None = None,
    attempts: int = 5,
    backoff: float = 0.5,
    timeout: float = 60.0,
    progress: TextIO | None = None,
) -> Download:
    """Download ``url`` (CSV or NDJSON) to ``path``, resuming at every cut marker's resume
    point; DownloadFailed (with the exit code) when it cannot complete. ``attempts``: how many
    times in a row a request may fail (unreachable, 429/502/503/504, cut without progress)
    before giving up, waiting ``backoff`` seconds, doubled each time, in between."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadFailed(BAD_URL, f"{url!r} is not an http:// or https:// URL")
    state = Download(path)
    with open(path, "wb") as out:
        client = _Client(url, out, state, token, timeout)
        client.progress = progress
        try:
            _follow(client, url, attempts, backoff)
        except DownloadFailed as exc:
            state.rows = client._rows()
            exc.state = state
            raise
    state.rows = client._rows()
    return state


def _follow(client: _Client, url: str, attempts: int, backoff: float) -> None:
    """Request ``url``, then each resume point, until the body ends complete."""
    state = client.state
    failures, current, last_rows = 0, url, -1
    while True:
        wait, why, cut = backoff * 2**failures, "", ""
        try:
            with client.open(current) as response:
                client.body(response, resumed=state.resumes > 0)
        except urllib.error.HTTPError as exc:
            if exc.code not in _RETRY_STATUS:
                raise DownloadFailed(REFUSED, f"{current} answered {_message(exc)}") from None
            why = f"{current} answered {exc.code}"
            wait = max(wait, float(exc.headers.get("Retry-After", "0") or 0))
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            why = f"{current} could not be reached: {getattr(exc, 'reason', exc)}"
        except _Cut as exc:
            cut = str(exc)
        if not why:
            # Cut, or ended cleanly by a proxy that closed the cut body for it (nginx with
            # an HTTP/1.0 upstream): either way the marker says whether it is complete.
            marker = client.strip_marker()
            if marker is None and not cut:
                break
            if marker is None:
                raise DownloadFailed(
                    NO_RESUME,
                    f"the stream was cut before its marker arrived ({cut}): no resume point",
                )
            resume = _resume_point(client.fmt, marker)
            if resume is None:
                client.keep_marker(marker)
                raise DownloadFailed(
                    NO_RESUME, "the stream was cut and its marker says there is no resume point"
                )
            current = urljoin(url, resume)
            state.resumes += 1
            if state.rows > last_rows:  # progress: the attempts start again
                failures, last_rows = 0, state.rows
                continue
            why = "the stream was cut again before any row"
        failures += 1
        if failures >= attempts:
            raise DownloadFailed(EXHAUSTED, f"gave up after {attempts} attempts: {why}")
        time.sleep(min(wait, _MAX_WAIT))


def main(url: str, path: str, attempts: int, timeout: float) -> int:
    """The ``download`` command: exit status 0 when the file is complete."""
    progress = sys.stderr if sys.stderr.isatty() else None
    try:
        state = download(
            url,
            path,
            token=os.environ.get(TOKEN_ENV) or None,
            attempts=attempts,
            timeout=timeout,
            progress=progress,
        )
    except DownloadFailed as exc:
        if progress is not None:
            progress.write("\n")
        done = exc.state if exc.state is not None else Download(path)
        print(done.summary(incomplete=str(exc)), file=sys.stderr)
        return exc.code
    if progress is not None:
        progress.write("\n")
    print(state.summary(), file=sys.stderr)
    return 0
