"""The relay fails a client that broke the protocol the way an endpoint behind a transparent
proxy would (Autobahn 3.2, 3.3, 4.1.3-4.2.5, 5.15 through the `websocket` kind): the frames the
client sent before its bad frame were already forwarded, so the upstream's answers to them (an
echo server's echoes) still reach the client, and only then does the client get its close with
the code of its own error. Before, the client's close went out at once and those answers were
dropped behind it (NON-STRICT where nginx is OK).

The test plays the upstream on a raw socket, so the order of events is fixed: the upstream reads
the good frame and the relay's close, and only then sends its echo."""

import base64
import hashlib
import queue
import socket
import threading

import pytest

from wsgate_harness import Gateway, free_port, recv_exact

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MASK = b"\x37\xfa\x21\x3d"
TEXT, CLOSE, PING, CONT = 0x1, 0x8, 0x9, 0x0
UP_PORT = free_port()

CONFIG = f"""
routes:
  - name: raw
    path: /raw
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/r"]
  - name: small
    path: /small
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/r"]
    limits: {{max_message_bytes: 100}}
"""


def frame(payload, opcode=TEXT, fin=True, mask=MASK, rsv=0):
    if isinstance(payload, str):
        payload = payload.encode()
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode, (0x80 if mask else 0) | len(payload)])
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def close_payload(code, reason=b""):
    return code.to_bytes(2, "big") + reason


def read_frame(sock):
    """(opcode, payload unmasked)."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(recv_exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(recv_exact(sock, 8), "big")
    key = recv_exact(sock, 4) if b1 & 0x80 else None
    payload = recv_exact(sock, n)
    if key:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return b0 & 0x0F, payload


def read_until_close(sock):
    """(data payloads before the close, close code)."""
    data = []
    while True:
        op, payload = read_frame(sock)
        if op == CLOSE:
            return data, int.from_bytes(payload[:2], "big")
        if op not in (PING, 0xA):
            data.append(payload)


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # byte by byte: the frames behind the head stay in the socket
        if not chunk:
            raise ConnectionError(f"closed during the head: {head!r}")
        head += chunk
    lines = head.decode().split("\r\n")
    return lines[0], {k.strip().lower(): v.strip() for k, _, v in
                      (line.partition(":") for line in lines[1:] if ":" in line)}


class RawUpstream:
    """Answers each handshake with a plain 101 and hands the socket to the test (`take`)."""

    def __init__(self, port):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.conns = queue.Queue()
        threading.Thread(target=self._loop, daemon=True).start()

    def _loop(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            c.settimeout(10)
            _, h = read_head(c)
            accept = base64.b64encode(hashlib.sha1(h["sec-websocket-key"].encode() + GUID).digest())
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
            self.conns.put(c)

    def take(self):
        return self.conns.get(timeout=10)


@pytest.fixture(scope="module")
def env():
    up = RawUpstream(UP_PORT)
    gw = Gateway(CONFIG).start()
    try:
        yield gw, up
    finally:
        gw.stop()
        up.listener.close()
        out = gw.output()
        gw.tmp.cleanup()
    # Under WSGATE_SANITIZE a report shows here; a clean stop exits 0.
    assert "Sanitizer" not in out, out[-20000:]
    assert gw.proc.returncode == 0, out[-5000:]


def pair(gw, up, path="/raw"):
    c = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    c.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
              .encode())
    status, _ = read_head(c)
    assert " 101 " in status, status
    return c, up.take()


BAD = {
    "rsv": (frame("bad", rsv=2), 1002),
    "reserved-opcode": (frame("bad", opcode=0xB), 1002),
    "continuation-after-a-whole-message": (frame("bad", opcode=CONT), 1002),
    "close-reason-not-utf8": (frame(close_payload(1000, b"\xed\xa0\x80"), opcode=CLOSE), 1007),
}


@pytest.mark.parametrize("bad", sorted(BAD))
def test_upstream_answers_to_earlier_frames_reach_the_client_before_its_close(env, bad):
    gw, up = env
    bad_frame, code = BAD[bad]
    c, u = pair(gw, up)
    with c, u:
        c.sendall(frame("hello") + bad_frame)  # one read for the relay: Autobahn sends so too
        assert read_frame(u) == (TEXT, b"hello")
        op, payload = read_frame(u)  # the relay failed the client: the upstream is told first
        assert (op, int.from_bytes(payload[:2], "big")) == (CLOSE, code)
        u.sendall(frame("hello", mask=None))  # the upstream's answer comes after that
        u.sendall(frame(close_payload(code), opcode=CLOSE, mask=None))
        data, got = read_until_close(c)
        assert data == [b"hello"] and got == code
    assert_serves(gw, up)


def test_upstream_gone_after_its_answers_still_closes_the_client_with_its_own_error(env):
    """No close frame from the upstream, only EOF: the client learns its own 1002, not the 1011
    'upstream went away' an upstream's end gets otherwise."""
    gw, up = env
    c, u = pair(gw, up)
    with c:
        c.sendall(frame("first", fin=False) + frame("second", opcode=CONT) +
                  frame("third", opcode=CONT))  # Autobahn 5.15: a continuation after the FIN
        assert read_frame(u) == (TEXT, b"first")
        assert read_frame(u) == (CONT, b"second")
        assert read_frame(u)[0] == CLOSE
        u.sendall(frame("firstsecond", mask=None))
        u.close()
        data, got = read_until_close(c)
        assert data == [b"firstsecond"] and got == 1002
    assert_serves(gw, up)


def test_oversize_message_still_closes_1009_after_the_upstreams_answers(env):
    gw, up = env
    c, u = pair(gw, up, "/small")
    with c, u:
        c.sendall(frame("ok") + frame("x" * 101))
        assert read_frame(u) == (TEXT, b"ok")
        op, payload = read_frame(u)
        assert (op, int.from_bytes(payload[:2], "big")) == (CLOSE, 1009)
        u.sendall(frame("ok", mask=None) + frame(close_payload(1009), opcode=CLOSE, mask=None))
        data, got = read_until_close(c)
        assert data == [b"ok"] and got == 1009


def assert_serves(gw, up):
    c, u = pair(gw, up)
    with c, u:
        c.sendall(frame("again"))
        assert read_frame(u) == (TEXT, b"again")
        u.sendall(frame("again", mask=None))
        assert read_frame(c) == (TEXT, b"again")
    assert gw.proc.poll() is None
