"""HTTP/1.x request and response heads from one TCP payload, read as Tracee reads them.

Tracee hands the TCP payload to Go's http.ReadRequest / http.ReadResponse. The
rules of those that show in its output are kept here: the request line and the
version must be well formed, header names are canonicalised (content-type ->
Content-Type) and a malformed header line rejects the message, the Host header
moves to `host` (an absolute request URI wins over it), `uri_path` is the
percent-decoded path, Transfer-Encoding is consumed (chunked -> content length
-1), Content-Length must be a number (a message without one: requests 0,
responses -1; 1xx/204/304 responses 0).

One deliberate difference: Go needs the blank line that ends the head, so a head
cut by the capture's snap length (or continued in the next segment) yields
nothing in Tracee. Here the complete header lines are used and `complete` says
the head was cut, so the caller can count it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

HTTP_MIN_LEN = 7                       # the kernel peeks 7 bytes ("DELETE ")
_REQUEST_PREFIXES = (b"GET ", b"POST ", b"PUT ", b"DELETE ", b"HEAD ")

REQUEST, RESPONSE = 1, 2

# RFC 7230 tchar
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


class HttpError(ValueError):
    """Not a well-formed HTTP/1.x head."""


def kind(payload: bytes) -> int:
    """What the kernel's peek at the first 7 bytes says: REQUEST, RESPONSE or 0."""
    if len(payload) < HTTP_MIN_LEN:
        return 0
    if payload.startswith(b"HTTP/"):
        return RESPONSE
    if payload.startswith(_REQUEST_PREFIXES):
        return REQUEST
    return 0


def _head_lines(payload: bytes) -> tuple[list[str], bool]:
    """The head's lines without line ends, and whether the blank line ending it was seen."""
    end = payload.find(b"\r\n\r\n")
    if end >= 0:
        head = payload[:end]
        if head.count(b"\n") == head.count(b"\r\n"):     # CRLF only: the common case
            return head.decode("utf-8", "replace").split("\r\n"), True
    a = payload.find(b"\n\r\n")
    b = payload.find(b"\n\n")
    if a < 0 and b < 0:
        last = payload.rfind(b"\n")
        if last < 0:
            raise HttpError("no complete line")
        head, complete = payload[:last], False
    else:
        head, complete = payload[:min(x for x in (a, b) if x >= 0)], True
    lines = head.decode("utf-8", "replace").split("\n")
    return [ln[:-1] if ln.endswith("\r") else ln for ln in lines], complete


def _version_ok(proto: str) -> bool:
    # Go's ParseHTTPVersion: "HTTP/" and a one-digit major and minor
    return (len(proto) == 8 and proto.startswith("HTTP/") and proto[6] == "."
            and proto[5].isdigit() and proto[7].isdigit() and proto[5].isascii()
            and proto[7].isascii())


def _canonical(key: str) -> str:
    # textproto.CanonicalMIMEHeaderKey for a valid token
    out = []
    upper = True
    for ch in key:
        out.append(ch.upper() if upper else ch.lower())
        upper = ch == "-"
    return "".join(out)


_KEYS: dict[str, str | None] = {}      # header name -> canonical name, None if not a token


def _key(key: str) -> str | None:
    k = _KEYS.get(key, "")
    if k == "":
        if len(_KEYS) > 4096:
            _KEYS.clear()
        k = _KEYS[key] = _canonical(key) if _TOKEN.match(key) else None
    return k


def _headers(lines: list[str]) -> dict[str, list[str]]:
    """textproto.ReadMIMEHeader over the lines after the first one."""
    hdr: dict[str, list[str]] = {}
    last: list[str] | None = None
    keys = _KEYS
    for ln in lines:
        c = ln[:1]
        if c == " " or c == "\t":     # obsolete line folding: joins the previous value
            if last is None:
                raise HttpError("malformed MIME header initial line")
            last[-1] = (last[-1] + " " + ln.strip(" \t")).strip(" \t")
            continue
        key, sep, value = ln.partition(":")
        if not sep:
            raise HttpError("malformed MIME header line")
        name = keys.get(key)
        if name is None:
            if not key:         # Go skips an empty name
                last = None
                continue
            name = _key(key)
            if name is None:
                raise HttpError("malformed MIME header line")
        value = value.strip(" \t")
        if not value.isprintable() and _BAD_VALUE.search(value):
            raise HttpError("malformed MIME header line")
        last = hdr.get(name)
        if last is None:
            hdr[name] = last = [value]
        else:
            last.append(value)
    if "Pragma" in hdr and hdr["Pragma"][:1] == ["no-cache"] and "Cache-Control" not in hdr:
        hdr["Cache-Control"] = ["no-cache"]
    return hdr


def _content_length(hdr: dict[str, list[str]], proto: str, status: int, response: bool) -> int:
    """net/http readTransfer: consumes Transfer-Encoding, returns the content length."""
    chunked = False
    te = hdr.pop("Transfer-Encoding", None)
    if te is not None and proto != "HTTP/1.0" and proto[:6] != "HTTP/0":
        if len(te) != 1 or te[0].lower() != "chunked":
            raise HttpError("unsupported transfer encoding")
        hdr.pop("Content-Length", None)
        chunked = True
    cls = hdr.get("Content-Length")
    if cls and len(cls) > 1:
        first = cls[0].strip(" \t")
        if any(c.strip(" \t") != first for c in cls[1:]):
            raise HttpError("multiple Content-Length headers")
        hdr["Content-Length"] = cls = [first]
    if chunked and "Trailer" in hdr:
        for t in hdr.pop("Trailer"):
            for k in t.split(","):
                if _canonical(k.strip(" \t")) in ("Transfer-Encoding", "Trailer", "Content-Length"):
                    raise HttpError("bad trailer key")
    if response and (status // 100 == 1 or status in (204, 304)):
        return 0
    if chunked:
        return -1
    if cls:
        v = cls[0].strip(" \t")
        if not v.isdigit() or not v.isascii() or len(v) > 19 or int(v) >= 1 << 63:
            raise HttpError("bad Content-Length")
        return int(v)
    return -1 if response else 0


def _request_target(method: str, uri: str) -> tuple[str, str]:
    """url.ParseRequestURI: (host, decoded path)."""
    if uri == "*":
        return "", "*"
    if method == "CONNECT" and not uri.startswith("/"):
        uri = "http://" + uri
    rest = uri
    host = ""
    m = _SCHEME.match(rest)
    if m:
        rest = rest[m.end():]
        if not rest.startswith("//"):
            raise HttpError("invalid URI for request")
        auth, slash, tail = rest[2:].partition("/")
        auth = auth.partition("?")[0]
        host = auth.rpartition("@")[2]
        rest = slash + tail
    elif not rest.startswith("/"):
        raise HttpError("invalid URI for request")
    path = rest.partition("?")[0]
    if "%" in path:
        if _BAD_ESCAPE.search(path):
            raise HttpError("invalid URL escape")
        path = unquote_to_bytes(path).decode("utf-8", "replace")
    return host, path


def parse_request(payload: bytes) -> tuple[dict, bool]:
    """trace.ProtoHTTPRequest and whether the head was complete."""
    lines, complete = _head_lines(payload)
    method, sp1, rest = lines[0].partition(" ")
    uri, sp2, proto = rest.partition(" ")
    if not sp1 or not sp2 or not _TOKEN.match(method) or not _version_ok(proto):
        raise HttpError("malformed request line")
    url_host, path = _request_target(method, uri)
    hdr = _headers(lines[1:])
    hosts = hdr.pop("Host", None)
    host = url_host or (hosts[0] if hosts else "")
    length = _content_length(hdr, proto, 0, False)
    return {"method": method, "protocol": proto, "host": host, "uri_path": path,
            "headers": dict(sorted(hdr.items())), "content_length": length}, complete


def parse_response(payload: bytes) -> tuple[dict, bool]:
    """trace.ProtoHTTPResponse and whether the head was complete."""
    lines, complete = _head_lines(payload)
    proto, sp, status = lines[0].partition(" ")
    if not sp:
        raise HttpError("malformed status line")
    status = status.lstrip(" ")
    code = status.partition(" ")[0]
    if len(code) != 3 or not code.isdigit() or not code.isascii() or not _version_ok(proto):
        raise HttpError("malformed status line")
    status_code = int(code)
    hdr = _headers(lines[1:])
    length = _content_length(hdr, proto, status_code, True)
    return {"status": status, "status_code": status_code, "protocol": proto,
            "headers": dict(sorted(hdr.items())), "content_length": length}, complete


def proto_http_from_request(req: dict) -> dict:
    """trace.ProtoHTTP of a request."""
    return {"direction": "request", "method": req["method"], "protocol": req["protocol"],
            "host": req["host"], "uri_path": req["uri_path"], "status": "", "status_code": 0,
            "headers": req["headers"], "content_length": req["content_length"]}


def proto_http_from_response(resp: dict) -> dict:
    """trace.ProtoHTTP of a response."""
    return {"direction": "response", "method": "", "protocol": resp["protocol"], "host": "",
            "uri_path": "", "status": resp["status"], "status_code": resp["status_code"],
            "headers": resp["headers"], "content_length": resp["content_length"]}
