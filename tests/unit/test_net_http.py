"""pytracee.net.http: HTTP heads read with the rules of Go's http.ReadRequest/ReadResponse."""

from __future__ import annotations

import pytest

from pytracee.net import http as h


def req(text: str) -> dict:
    msg, complete = h.parse_request(text.encode())
    assert complete
    return msg


def resp(text: str) -> dict:
    msg, complete = h.parse_response(text.encode())
    assert complete
    return msg


def test_kind_is_the_kernels_peek():
    assert h.kind(b"GET / HTTP/1.1\r\n") == h.REQUEST
    assert h.kind(b"DELETE /x HTTP/1.1") == h.REQUEST
    assert h.kind(b"HTTP/1.1 200 OK") == h.RESPONSE
    assert h.kind(b"PATCH / HTTP/1.1\r\n") == 0
    assert h.kind(b"GET /") == 0            # fewer than 7 bytes
    assert h.kind(b"get / HTTP/1.1") == 0


def test_request_fields():
    r = req("POST /api/v1/items%20new?debug=1 HTTP/1.1\r\nHost: api.example:8080\r\n"
            "content-type: application/json\r\nX-B3-TraceId: abc\r\nAccept: a\r\n"
            "Accept:  b \r\nContent-Length: 17\r\n\r\n{\"k\": \"v\"}")
    assert r == {"method": "POST", "protocol": "HTTP/1.1", "host": "api.example:8080",
                 "uri_path": "/api/v1/items new",
                 "headers": {"Accept": ["a", "b"], "Content-Length": ["17"],
                             "Content-Type": ["application/json"], "X-B3-Traceid": ["abc"]},
                 "content_length": 17}


def test_absolute_uri_host_wins_over_header():
    r = req("GET http://user@proxy.example:3128/a/b?x HTTP/1.1\r\nHost: other\r\n\r\n")
    assert (r["host"], r["uri_path"], r["headers"]) == ("proxy.example:3128", "/a/b", {})


def test_request_targets():
    assert req("GET * HTTP/1.1\r\n\r\n")["uri_path"] == "*"
    r = req("CONNECT example.com:443 HTTP/1.1\r\n\r\n")
    assert (r["host"], r["uri_path"]) == ("example.com:443", "")
    assert req("GET /%E2%82%AC HTTP/1.0\r\nHost: h\r\n\r\n")["uri_path"] == "/\u20ac"
    for bad in ("GET index.html HTTP/1.1", "GET /%zz HTTP/1.1", "GET http:x HTTP/1.1"):
        with pytest.raises(h.HttpError):
            h.parse_request((bad + "\r\n\r\n").encode())


def test_no_host_no_body():
    r = req("GET / HTTP/1.0\r\n\r\n")
    assert (r["host"], r["content_length"], r["headers"]) == ("", 0, {})


def test_folded_header_and_lf_only_lines():
    r = h.parse_request(b"GET / HTTP/1.1\nHost: x\nX-Long: a\n  b\n\tc\n\n")[0]
    assert r["headers"] == {"X-Long": ["a b c"]}


def test_pragma_no_cache_implies_cache_control():
    assert req("GET / HTTP/1.1\r\nPragma: no-cache\r\n\r\n")["headers"] == {
        "Cache-Control": ["no-cache"], "Pragma": ["no-cache"]}
    assert req("GET / HTTP/1.1\r\nPragma: no-cache\r\nCache-Control: max-age=1\r\n\r\n")[
        "headers"] == {"Cache-Control": ["max-age=1"], "Pragma": ["no-cache"]}


def test_transfer_encoding():
    r = req("POST /u HTTP/1.1\r\nTransfer-Encoding: Chunked\r\nContent-Length: 10\r\n\r\n")
    assert (r["content_length"], r["headers"]) == (-1, {})
    r = req("POST /u HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n")
    assert (r["content_length"], r["headers"]) == (10, {"Content-Length": ["10"]})
    for te in ("gzip", "gzip, chunked"):
        with pytest.raises(h.HttpError, match="transfer encoding"):
            req(f"POST / HTTP/1.1\r\nTransfer-Encoding: {te}\r\n\r\n")
    r = resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Expires\r\n\r\n")
    assert (r["content_length"], r["headers"]) == (-1, {})
    with pytest.raises(h.HttpError, match="trailer"):
        resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: content-length\r\n\r\n")


def test_content_length_rules():
    assert req("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n")[
        "headers"] == {"Content-Length": ["5"]}
    for cl in ("5, 6", "-1", "", "0x10", "99999999999999999999"):
        with pytest.raises(h.HttpError):
            req(f"PUT / HTTP/1.1\r\nContent-Length: {cl}\r\n\r\n")
    with pytest.raises(h.HttpError, match="multiple"):
        req("PUT / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n")


def test_response_fields_and_lengths():
    r = resp("HTTP/1.1 404 Not Found\r\nServer: nginx\r\nContent-Length: 153\r\n\r\n<html>")
    assert r == {"status": "404 Not Found", "status_code": 404, "protocol": "HTTP/1.1",
                 "headers": {"Content-Length": ["153"], "Server": ["nginx"]},
                 "content_length": 153}
    assert resp("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")["content_length"] == -1
    assert resp("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n")["content_length"] == 0
    assert resp("HTTP/1.1 304 Not Modified\r\n\r\n")["content_length"] == 0
    assert resp("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")[
        "content_length"] == 0
    r = resp("HTTP/1.0 200\r\n\r\n")
    assert (r["status"], r["status_code"], r["protocol"]) == ("200", 200, "HTTP/1.0")


@pytest.mark.parametrize("head", [
    "HTTP/1.1 2000 OK", "HTTP/1.1 OK", "HTTP/1.10 200 OK", "HTTP/2 200 OK", "HTTP/1.1",
])
def test_malformed_status_lines(head):
    with pytest.raises(h.HttpError):
        h.parse_response((head + "\r\n\r\n").encode())


@pytest.mark.parametrize("head", [
    "GET / HTTP/1.1\r\nHost x",                  # no colon
    "GET / HTTP/1.1\r\nBad Name: x",             # not a token
    "GET / HTTP/1.1\r\nX: a\x01b",               # control character
    "GET / HTTP/1.1\r\n folded-first: x",        # continuation with nothing before
    "GET /  HTTP/1.1",                           # extra space: proto is " HTTP/1.1"
    "G(T / HTTP/1.1",                            # method not a token
    "GET / HTTP/1.1 extra",
])
def test_malformed_requests(head):
    with pytest.raises(h.HttpError):
        h.parse_request((head + "\r\n\r\n").encode())


def test_head_cut_short_keeps_complete_lines():
    msg, complete = h.parse_request(b"GET /x HTTP/1.1\r\nHost: a.example\r\nUser-Ag")
    assert not complete
    assert (msg["host"], msg["headers"]) == ("a.example", {})
    with pytest.raises(h.HttpError, match="no complete line"):
        h.parse_request(b"GET /x HTTP/1.1")


def test_proto_http_shapes():
    r = req("GET /a HTTP/1.1\r\nHost: h\r\n\r\n")
    assert h.proto_http_from_request(r) == {
        "direction": "request", "method": "GET", "protocol": "HTTP/1.1", "host": "h",
        "uri_path": "/a", "status": "", "status_code": 0, "headers": {}, "content_length": 0}
    s = resp("HTTP/1.1 302 Found\r\nLocation: /b\r\n\r\n")
    assert h.proto_http_from_response(s) == {
        "direction": "response", "method": "", "protocol": "HTTP/1.1", "host": "", "uri_path": "",
        "status": "302 Found", "status_code": 302, "headers": {"Location": ["/b"]},
        "content_length": -1}
