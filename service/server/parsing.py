"""The request parser: waitress's, made to answer a malformed request at once (issue 29).

waitress parses a request only when its header block ends (``\\r\\n\\r\\n``): garbage, a TLS
hello, a request line of spaces or an LF-only request never ends one, so the connection was held
in silence until the header deadline. And a parsing error before the request line was read left
the request without a path, which the liveness-probe check of ``GuardedServer.add_task`` then
failed on: the connection was closed with no answer at all. Here:

- **The request line is checked as its bytes arrive**: once what has arrived can no longer begin
  ``method SP target SP HTTP/d.d CRLF``, the answer is 400 (RFC 9112 §3); a major version other
  than 1 is 505, a higher 1.x is served as HTTP/1.1 (RFC 9110 §2.5).
- **Line endings are CRLF**: a bare LF anywhere in the head, and obs-fold, are refused with 400
  as they arrive (RFC 9112 §2.2 and §5.2 allow refusing either; refusing leaves no two readings
  of one request for a proxy in front to disagree with).
- **Host is checked** (RFC 9112 §3.2): an HTTP/1.1 request without one, any request with two,
  or one whose value is not ``host[:port]`` is 400.
- **Framing that cannot be trusted is 400** (RFC 9112 §6): both Content-Length and
  Transfer-Encoding, chunked applied twice or not last, a Transfer-Encoding on HTTP/1.0. A coding
  other than chunked is 501 (§6.1). A chunk larger than the body limit is 413 at its size line,
  not after its bytes; a chunk-size line longer than ``MAX_CHUNK_LINE`` is 400.
- **Every refusal is one answer** with ``Connection: close``, written by waitress's ``ErrorTask``
  from a stand-in HTTP/1.1 request; what else the client sent is discarded.

``Expect: 100-continue`` on a request without a body is dropped (waitress would hang on it:
see service/server/connections.py).
"""

from __future__ import annotations

import re

from waitress.parser import HTTPRequestParser, ParsingError, TransferEncodingNotImplemented
from waitress.utilities import BadRequest, Error, RequestEntityTooLarge, ServerNotImplemented

from .admission import NOT_EXPECTED, Expected

__all__ = ["RequestParser", "VersionNotSupported"]

MAX_CHUNK_LINE = 4096  # bytes of a chunk-size line with its extensions (nginx: its header buffer)

_TCHAR = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
_TARGET = rb"[\x21-\x7e]"  # visible ASCII: no space, control or 8-bit byte (RFC 3986)
_REQUEST_LINE = re.compile(rb"(%s+) (%s+) HTTP/([0-9])\.([0-9])" % (_TCHAR, _TARGET))
# The beginnings of a request line: what may still become one when more bytes arrive.
_REQUEST_LINE_START = re.compile(
    rb"%s*|%s+ %s*|%s+ %s+ (?:H(?:T(?:T(?:P(?:/(?:[0-9](?:\.[0-9]?)?)?)?)?)?)?)?\r?"
    % (_TCHAR, _TCHAR, _TARGET, _TCHAR, _TARGET)
)
_LEADING_EMPTY_LINES = re.compile(rb"(?:\r\n)*")
_BARE_LF = re.compile(rb"(?<!\r)\n")
_HOST = re.compile(rb"[A-Za-z0-9\-._~!$&'()*+,;=%:\[\]]*")  # uri-host [":" port], RFC 3986
# Stands in for a refused request, so waitress's ErrorTask answers HTTP/1.1 and closes.
_STAND_IN = b"GET / HTTP/1.1\r\nConnection: close"


class VersionNotSupported(Error):
    code = 505
    reason = "HTTP Version Not Supported"


class _Refused(Exception):
    def __init__(self, error: Error) -> None:
        super().__init__(error.body)
        self.error = error


def _start_problem(head: bytes) -> Error | None:
    """What is wrong with the first bytes of a request (``None``: nothing yet)."""
    head = head[_LEADING_EMPTY_LINES.match(head).end() :]  # RFC 9112 §2.2 allows these
    end = head.find(b"\n")
    if end < 0:
        if _REQUEST_LINE_START.fullmatch(head):
            return None
        return BadRequest("malformed request line: expected METHOD SP TARGET SP HTTP/1.1 CRLF")
    line = head[:end]
    if not line.endswith(b"\r"):
        return BadRequest("line ends in a bare LF: expected CRLF")
    match = _REQUEST_LINE.fullmatch(line[:-1])
    if match is None:
        return BadRequest("malformed request line: expected METHOD SP TARGET SP HTTP/1.1 CRLF")
    if match[3] != b"1":
        return VersionNotSupported(f"HTTP/{match[3].decode()}.{match[4].decode()}; expected 1.x")
    stop = head.find(b"\r\n\r\n")  # a pipelined request after this one is not this one's
    if _BARE_LF.search(head, end + 1, stop if stop >= 0 else len(head)):
        return BadRequest("line ends in a bare LF: expected CRLF")
    return None


def _framing_problem(lines: list[bytes], version: bytes) -> Error | None:
    """Content-Length and Transfer-Encoding that do not say one thing (RFC 9112 §6)."""
    codings: list[bytes] = []
    has_length = False
    for line in lines:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name == b"transfer-encoding":
            codings += [c.strip(b" \t").lower() for c in value.split(b",") if c.strip(b" \t")]
        has_length = has_length or name == b"content-length"
    if not codings:
        return None
    if version == b"1.0":
        return BadRequest("Transfer-Encoding in an HTTP/1.0 request")
    if has_length:
        return BadRequest("both Content-Length and Transfer-Encoding: expected one")
    if codings.count(b"chunked") > 1 or (b"chunked" in codings and codings[-1] != b"chunked"):
        return BadRequest("chunked must be the last transfer coding, and only once")
    if codings != [b"chunked"]:
        return ServerNotImplemented("Transfer-Encoding other than chunked")
    return None


def _host_problem(lines: list[bytes], http11: bool) -> Error | None:
    """RFC 9112 §3.2: one Host line with a valid value, and one at all in HTTP/1.1."""
    hosts = [v for n, _, v in (line.partition(b":") for line in lines) if n.lower() == b"host"]
    if len(hosts) > 1:
        return BadRequest("more than one Host header: expected one")
    if not hosts:
        return BadRequest("no Host header: an HTTP/1.1 request needs one") if http11 else None
    if not _HOST.fullmatch(hosts[0].strip(b" \t")):
        return BadRequest("malformed Host header: expected host[:port]")
    return None


class RequestParser(HTTPRequestParser):
    """waitress's parser with the checks of the module docstring; every error answered.

    ``expected`` is the stream request's count in admission when the loop thread passed it on
    (service/server/door.py); the request's end (``close``, which waitress calls once it is
    served, whatever happened) settles it if its view did not.
    """

    expected: Expected = NOT_EXPECTED

    def close(self) -> None:
        self.expected.settle()
        super().close()

    def received(self, data: bytes) -> int:
        if self.completed:
            return 0
        try:
            if self.body_rcv is None and (problem := _start_problem(self.header_plus + data)):
                raise _Refused(problem)
            consumed = super().received(data)
            if self.error is not None:
                raise _Refused(self.error)  # waitress's own: 413, 431, chunk errors
            self._check_chunk()
        except _Refused as refused:
            self._refuse(refused.error)
            return len(data)
        return consumed

    def parse_header(self, header_plus: bytes) -> None:
        lines = header_plus.split(b"\r\n")
        match = _REQUEST_LINE.fullmatch(lines[0].rstrip(b"\r"))
        if match is None:  # _start_problem has seen the line already: not expected here
            raise _Refused(BadRequest("malformed request line"))
        if any(line[:1] in (b" ", b"\t") for line in lines[1:]):
            raise _Refused(BadRequest("obs-fold (a header line starting with whitespace)"))
        if problem := _framing_problem(lines[1:], match[3] + b"." + match[4]):
            raise _Refused(problem)
        if problem := _host_problem(lines[1:], http11=match[4] != b"0"):
            raise _Refused(problem)
        if match[4] not in (b"0", b"1"):  # a higher 1.x is served as 1.1 (RFC 9110 §2.5)
            lines[0] = lines[0][: match.start(4)] + b"1"
        try:
            super().parse_header(b"\r\n".join(lines))
        except ParsingError as exc:
            raise _Refused(BadRequest(exc.args[0])) from None
        except TransferEncodingNotImplemented as exc:
            raise _Refused(ServerNotImplemented(exc.args[0])) from None
        if self.expect_continue and not self.chunked and not self.content_length:
            self.expect_continue = False  # no body to wait for; see the module docstring

    def _check_chunk(self) -> None:
        receiver = self.body_rcv
        if not self.chunked or self.completed or receiver is None:
            return
        if self.body_bytes_received + receiver.chunk_remainder >= self.adj.max_request_body_size:
            raise _Refused(RequestEntityTooLarge("chunk exceeds the request body limit"))
        if len(receiver.control_line) > MAX_CHUNK_LINE:
            raise _Refused(BadRequest(f"chunk-size line longer than {MAX_CHUNK_LINE} bytes"))

    def _refuse(self, error: Error) -> None:
        """Become a complete stand-in request carrying ``error``, so it is answered and closed."""
        if self.body_rcv is not None:
            self.body_rcv.getbuf().close()
        self.headers = {}
        self.body_rcv = None
        self.chunked = False
        self.content_length = 0
        self.header_plus = b""
        HTTPRequestParser.parse_header(self, _STAND_IN)
        self.expect_continue = False
        self.error = error
        self.headers_finished = True
        self.completed = True
