"""RFC 6455 on the websocketpp-served routes (echo): frames with a length no conforming peer
sends, and close frames that are invalid on the wire, are protocol errors (close 1002); a close
reason that is not UTF-8 is 1007. Plus the HTTP answers to requests websocketpp's own parser
refuses: each has a reason phrase.

Raw sockets on both ends of the test (python3-websockets would never send these bytes).
"""

import socket

import pytest

from wsgate_harness import Gateway, http_request, raw_handshake, recv_exact

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""

MASK = b"\x11\x22\x33\x44"
TEXT, CLOSE = 0x1, 0x8


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG) as g:
        yield g


def masked(payload, opcode=TEXT):
    n = len(payload)
    head = bytes([0x80 | opcode, 0x80 | n]) if n < 126 else bytes(
        [0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def read_close(sock):
    """Frames until the server's close frame: its (code, reason bytes)."""
    while True:
        b0, b1 = recv_exact(sock, 2)
        n = b1 & 0x7F
        if n == 126:
            n = int.from_bytes(recv_exact(sock, 2), "big")
        elif n == 127:
            n = int.from_bytes(recv_exact(sock, 8), "big")
        payload = recv_exact(sock, n)
        if b0 & 0x0F == CLOSE:
            return int.from_bytes(payload[:2], "big"), payload[2:]


def echo_session(gw):
    status, _, s = raw_handshake(gw.port, "/echo")
    assert status == 101
    s.sendall(masked(b"hello"))
    b0, b1 = recv_exact(s, 2)
    assert recv_exact(s, b1 & 0x7F) == b"hello"  # the session works before the bad frame
    return s


@pytest.mark.parametrize("header", [
    # 5 bytes announced in the 16-bit form (126): minimal is the 7-bit form.
    pytest.param(bytes([0x81, 0x80 | 126]) + (5).to_bytes(2, "big"), id="16-bit-for-5"),
    # 200 bytes announced in the 64-bit form (127): minimal is the 16-bit form.
    pytest.param(bytes([0x81, 0x80 | 127]) + (200).to_bytes(8, "big"), id="64-bit-for-200"),
    # The most significant bit of a 64-bit length must be 0.
    pytest.param(bytes([0x81, 0x80 | 127]) + (1 << 63 | 5).to_bytes(8, "big"), id="top-bit"),
    pytest.param(bytes([0x82, 0x80 | 127]) + b"\xff" * 8, id="all-ones"),
])
def test_bad_length_encoding_closes_1002(gw, header):
    s = echo_session(gw)
    try:
        s.sendall(header + MASK + b"x" * 5)
        code, _ = read_close(s)
        assert code == 1002
    finally:
        s.close()
    assert http_request(gw.port, "/health")[0] == 200


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_close_codes_invalid_on_the_wire_close_1002(gw, code):
    s = echo_session(gw)
    try:
        s.sendall(masked(code.to_bytes(2, "big"), opcode=CLOSE))
        got, _ = read_close(s)
        assert got == 1002
    finally:
        s.close()


def test_close_reason_not_utf8_closes_1007(gw):
    s = echo_session(gw)
    try:
        s.sendall(masked((1000).to_bytes(2, "big") + b"\xce\xba\xed\xa0\x80", opcode=CLOSE))
        got, reason = read_close(s)
        # websocketpp fails it as a protocol error (1002), which RFC 6455 allows as well as 1007.
        assert got in (1002, 1007), got
        reason.decode()  # what comes back is UTF-8: the bad reason is not echoed
    finally:
        s.close()


def status_line(port, request):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        s.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        return head.split(b"\r\n", 1)[0].decode()
    finally:
        s.close()


UPGRADE = (b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")


@pytest.mark.parametrize("request_bytes", [
    pytest.param(b"GET /echo HTTP/1.0\r\n" + UPGRADE + b"\r\n", id="http-1.0"),
    pytest.param(b"GET /echo HTTP/1.1\r\n" + UPGRADE + b"\r\n", id="no-host"),
])
def test_refused_requests_have_a_reason_phrase(gw, request_bytes):
    line = status_line(gw.port, request_bytes)
    version, status, phrase = (line.split(" ", 2) + [""])[:3]
    assert status == "400", line
    assert phrase == "Bad Request", line
