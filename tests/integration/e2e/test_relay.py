"""The `websocket` route kind's own relay (dataplane/kinds/websocket/proxy_relay.cc) end to end.

The relay does both handshakes and forwards frames verbatim, so most of what is tested here is
about bytes python3-websockets would never send: unmasked or reserved client frames, bad close
codes, a frame written one byte at a time, a frame pipelined behind the handshake request, and,
on the upstream side, masked frames, frames in the same packet as the 101, pings, fragments, a
frame cut off by EOF. Those are written by hand on raw sockets: `ws_client` is a raw client, and
`RawUpstream` a raw upstream that answers the gateway's handshake (with whatever a test sets) and
hands the connected socket to the test, which then plays the upstream's part frame by frame.
Where an ordinary peer is enough, the harness's python3-websockets `Upstream` (an echo server)
runs on an event loop in a background thread so that the tests themselves can block on sockets.

No assertion depends on how fast the machine is: waits are bounded, nothing is measured."""

import asyncio
import base64
import concurrent.futures
import hashlib
import queue
import socket
import threading
import time

import grpc
import pytest
import websockets

from wsgate_harness import (Gateway, Upstream, connect, free_port, http_request, metric,
                            parse_metrics, recv_exact, stubs, wait_for)

UP_PORT = free_port()   # python3-websockets echo upstream (fixture `up`)
RAW_PORT = free_port()  # RawUpstream (fixture `raw`)

CONFIG = f"""
routes:
  - name: proxy
    path: /proxy
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
  - name: count
    path: /count
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
  - name: sess
    path: /sess
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
  - name: byname
    path: /byname
    websocket:
      upstreams: ["ws://localhost:{UP_PORT}/up"]
  - name: raw
    path: /raw
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/r"]
  - name: raw-sess
    path: /raw-sess
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/s"]
  - name: raw-fin
    path: /raw-fin
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/f"]
  - name: small
    path: /small
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{max_message_bytes: 100}}
  - name: small-raw
    path: /small-raw
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/r"]
    limits: {{max_message_bytes: 100}}
  - name: rate-drop
    path: /rate-drop
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{messages_per_second: 0.1, message_burst: 2}}
  - name: rate-close
    path: /rate-close
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{messages_per_second: 0.1, message_burst: 1, rate_policy: RATE_POLICY_CLOSE}}
  - name: slow
    path: /slow
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/r"]
    limits: {{send_queue_bytes: 65536, slow_consumer_policy: SLOW_CONSUMER_POLICY_CLOSE}}
  - name: drop-oldest
    path: /drop-oldest
    websocket:
      upstreams: ["ws://127.0.0.1:{RAW_PORT}/r"]
    limits: {{send_queue_bytes: 65536, slow_consumer_policy: SLOW_CONSUMER_POLICY_DROP_OLDEST}}
  - name: pings
    path: /pings
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{ping_interval_ms: 200, ping_timeout_ms: 1000}}
  - name: lifetime
    path: /lifetime
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{max_lifetime_ms: 1500}}
  - name: idle
    path: /idle
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
    limits: {{idle_timeout_ms: 1000}}
"""

RATE_LIMITED = '{"error":"rate_limited","limit":"messages_per_second"}'
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENT_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
MASK = b"\x37\xfa\x21\x3d"  # a client's masking key; never 0, so that masking is visible
TEXT, BINARY, CLOSE, PING, PONG, CONT = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


# ---------------------------------------------------------------------------------------------
# Frames by hand.

def frame(payload=b"", opcode=TEXT, fin=True, mask=MASK, rsv=0, length=None):
    """One frame's bytes. `mask` None: unmasked (an upstream's frame). `length` overrides the
    announced payload length (a header that promises more than follows)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([b0, m | n])
    elif n < 65536:
        head = bytes([b0, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([b0, m | 127]) + n.to_bytes(8, "big")
    if mask:
        head += mask
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + payload


def up_frame(payload=b"", opcode=TEXT, fin=True, **kw):
    """An upstream's (server's) frame: unmasked."""
    return frame(payload, opcode, fin, mask=None, **kw)


def close_payload(code, reason=""):
    return code.to_bytes(2, "big") + reason.encode()


def exact(sock, n):
    return recv_exact(sock, n)


class Frame:
    def __init__(self, fin, rsv, opcode, masked, payload):
        self.fin, self.rsv, self.opcode, self.masked, self.payload = fin, rsv, opcode, masked, payload

    @property
    def close(self):
        """(code, reason) of a close frame (1005: no status)."""
        if len(self.payload) < 2:
            return 1005, ""
        return int.from_bytes(self.payload[:2], "big"), self.payload[2:].decode()

    def __repr__(self):
        return (f"Frame(fin={self.fin}, rsv={self.rsv}, opcode={self.opcode}, "
                f"masked={self.masked}, payload={self.payload[:60]!r})")


def read_any(sock):
    """The next frame from either side (unmasked here when it came masked)."""
    b0, b1 = exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(sock, 2), "big")
    elif n == 127:
        n = int.from_bytes(exact(sock, 8), "big")
    masked = bool(b1 & 0x80)
    key = exact(sock, 4) if masked else None
    payload = exact(sock, n)
    if masked:
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0x0F, masked, payload)


def read_data(sock):
    """The next frame that is not a ping or pong."""
    while True:
        f = read_any(sock)
        if f.opcode not in (PING, PONG):
            return f


def read_until_close(sock):
    """Frames until a close frame: (frames before it, (code, reason))."""
    frames = []
    while True:
        f = read_any(sock)
        if f.opcode == CLOSE:
            return frames, f.close
        frames.append(f)


def read_to_end(sock):
    """Everything until the peer ends the TCP connection (EOF or reset); the socket's timeout
    bounds the wait."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk


def read_head(sock):
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)  # one byte at a time: what follows the head stays in the socket
        if not chunk:
            raise ConnectionError(f"closed during the HTTP head: {head!r}")
        head += chunk
    lines = head.decode().split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return lines[0], headers


def ws_client(port, path, extra=b"", protocols=None, rcvbuf=None, headers=""):
    """A raw client's handshake; `extra` goes in the same send() as the request head.
    Returns (status, headers, socket); the caller closes the socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(10)
    s.connect(("127.0.0.1", port))
    head = (f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {CLIENT_KEY}\r\nSec-WebSocket-Version: 13\r\n")
    if protocols:
        head += f"Sec-WebSocket-Protocol: {', '.join(protocols)}\r\n"
    s.sendall((head + headers + "\r\n").encode() + extra)
    status_line, headers = read_head(s)
    return int(status_line.split(" ")[1]), headers, s


# ---------------------------------------------------------------------------------------------
# Upstreams.

def switching_protocols(accept, extra_headers=""):
    return (f"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept}\r\n{extra_headers}\r\n").encode()


class RawUpstream:
    """A WebSocket upstream written by hand. Each connection's handshake is answered on its own
    thread with `answer(accept, request_head)` (default: a plain 101); the socket then waits in
    `conns` for the test, which plays the upstream from there."""

    def __init__(self, port):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port))
        self.listener.listen(64)
        self.answer = None
        self.conns = queue.Queue()
        self.all = []
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while True:
            try:
                c, _ = self.listener.accept()
            except OSError:
                return
            self.all.append(c)
            threading.Thread(target=self._handshake, args=(c,), daemon=True).start()

    def _handshake(self, c):
        try:
            c.settimeout(10)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _, headers = read_head(c)
            accept = accept_for(headers["sec-websocket-key"])
            answer = (self.answer or (lambda acc, _h: switching_protocols(acc)))(accept, headers)
            # A list: pieces written one by one, a little apart (an answer split across packets).
            for piece in answer if isinstance(answer, list) else [answer]:
                c.sendall(piece)
                if isinstance(answer, list):
                    time.sleep(0.002)
            self.conns.put((c, headers))
        except OSError:
            pass

    def take(self, timeout=10):
        """The next connection whose handshake was answered: (socket, request headers)."""
        return self.conns.get(timeout=timeout)

    def reset(self):
        self.answer = None
        while True:
            try:
                self.conns.get_nowait()
            except queue.Empty:
                return

    def stop(self):
        self.listener.close()
        for c in self.all:
            c.close()


class LoopThread:
    """An asyncio loop on a background thread: python3-websockets upstreams run there while the
    test blocks on raw sockets."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=30):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def gw():
    g = Gateway(CONFIG, workers=2).start()
    try:
        yield g
    finally:
        g.stop()
        out = g.output()
        g.tmp.cleanup()
    # Under WSGATE_SANITIZE a report (e.g. LeakSanitizer's at exit) shows here; a clean stop
    # exits 0.
    assert "Sanitizer" not in out, out[-20000:]
    assert g.proc.returncode == 0, out[-5000:]


@pytest.fixture(scope="module")
def bg():
    t = LoopThread()
    yield t
    t.stop()


@pytest.fixture
def up(bg):
    """A fresh python3-websockets echo upstream on UP_PORT for one test."""
    u = Upstream(UP_PORT)
    bg.run(u.__aenter__())
    yield u
    bg.run(u.__aexit__(None, None, None))


@pytest.fixture(scope="module")
def raw_server():
    r = RawUpstream(RAW_PORT)
    yield r
    r.stop()


@pytest.fixture
def raw(raw_server):
    raw_server.reset()
    yield raw_server
    raw_server.reset()


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


def hits(gw, route, limit):
    return metric(metrics(gw), "wsgate_limit_hits_total", route=route, limit=limit)


def raw_pair(gw, raw, path="/raw", **kw):
    """A raw client connected through `path` to a RawUpstream connection: (client, upstream)."""
    status, headers, c = ws_client(gw.port, path, **kw)
    assert status == 101, status
    assert headers["sec-websocket-accept"] == accept_for(CLIENT_KEY)
    u, _ = raw.take()
    return c, u


def assert_echo_through(c, u, text="again"):
    """One message each way between a raw client `c` and a raw upstream `u`, as sent."""
    c.sendall(frame(text))
    f = read_any(u)
    assert (f.opcode, f.payload, f.masked) == (TEXT, text.encode(), True)
    u.sendall(up_frame(text + "-back"))
    f = read_any(c)
    assert (f.opcode, f.payload, f.masked) == (TEXT, (text + "-back").encode(), False)


def assert_relay_serves(gw, raw):
    """A new connection through the raw upstream relays both ways: the gateway still serves."""
    c, u = raw_pair(gw, raw)
    try:
        assert_echo_through(c, u)
    finally:
        c.close()
        u.close()


def assert_proxy_serves(gw):
    async def main():
        async with connect(gw.url("/proxy")) as ws:
            await ws.send("still serving")
            assert await asyncio.wait_for(ws.recv(), 5) == "still serving"
    asyncio.run(main())


def session_stub(gw):
    return stubs().session_grpc.SessionServiceStub(gw.channel())


def only_session(api, route):
    """The route's one session (an earlier test's session may still be finishing its close)."""
    def one():
        got = api.ListSessions(stubs().session.ListSessionsRequest(route=route), timeout=10)
        return got.sessions[0] if len(got.sessions) == 1 else None
    return wait_for(one, what=f"exactly one session on route {route}")


# ---------------------------------------------------------------------------------------------
# 1. Protocol errors: 1002 towards the side that broke the protocol, and the other side learns.

@pytest.mark.parametrize("bad", [
    pytest.param(frame("x", mask=None), id="unmasked"),
    pytest.param(frame("x", opcode=0x3), id="reserved-opcode-3"),
    pytest.param(frame("x", opcode=0xB), id="reserved-opcode-B"),
    pytest.param(frame("x", rsv=4), id="rsv1"),
    pytest.param(frame("x", rsv=1), id="rsv3"),
    pytest.param(frame(close_payload(1005), opcode=CLOSE), id="close-code-1005"),
    pytest.param(frame(close_payload(999), opcode=CLOSE), id="close-code-999"),
    pytest.param(frame(b"\x03", opcode=CLOSE), id="close-1-byte"),
    pytest.param(frame(b"p" * 126, opcode=PING), id="ping-126-bytes"),
    pytest.param(frame(b"p", opcode=PING, fin=False), id="fragmented-ping"),
    pytest.param(frame("x", opcode=CONT), id="continuation-first"),
    pytest.param(frame("a", fin=False) + frame("b"), id="new-message-inside-fragmented"),
])
def test_client_protocol_error_closes_1002_both_ways(gw, up, bad):
    status, _, c = ws_client(gw.port, "/proxy")
    try:
        assert status == 101
        c.sendall(frame("fine"))
        assert read_any(c).payload == b"fine"  # the session works before the bad frame
        c.sendall(bad)
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1002
    finally:
        c.close()
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed[0][0] == 1002
    assert up.received == ["fine"]  # the bad frame was not forwarded


@pytest.mark.parametrize("bad", [
    pytest.param(frame("masked by a server", mask=MASK), id="masked"),
    pytest.param(up_frame("x", opcode=0x4), id="reserved-opcode-4"),
    pytest.param(up_frame("x", rsv=2), id="rsv2"),
    pytest.param(up_frame(close_payload(1006), opcode=CLOSE), id="close-code-1006"),
    pytest.param(up_frame(close_payload(5000), opcode=CLOSE), id="close-code-5000"),
    pytest.param(up_frame("x", opcode=CONT), id="continuation-first"),
])
def test_upstream_protocol_error_closes_client_1002_and_gateway_keeps_serving(gw, raw, bad):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(bad)
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1002
        f = read_data(u)  # the upstream is told too
        assert f.opcode == CLOSE and f.close[0] == 1002 and f.masked
    finally:
        c.close()
        u.close()
    assert_relay_serves(gw, raw)


BAD_UTF8_REASON = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"  # a surrogate


def test_client_close_reason_not_utf8_fails_1007_and_is_not_forwarded(gw, up):
    """RFC 6455 section 5.5.1 (Autobahn 7.5.1): the connection fails; neither side gets the bad
    reason."""
    status, _, c = ws_client(gw.port, "/proxy")
    try:
        assert status == 101
        c.sendall(frame("fine"))
        assert read_any(c).payload == b"fine"
        c.sendall(frame(close_payload(1000) + BAD_UTF8_REASON, opcode=CLOSE))
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1007
    finally:
        c.close()
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed[0][0] == 1007


def test_upstream_close_reason_not_utf8_fails_1007_and_is_not_forwarded(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame(close_payload(1000) + BAD_UTF8_REASON, opcode=CLOSE))
        frames, (code, reason) = read_until_close(c)  # .close decodes: a bad reason would raise
        assert frames == [] and code == 1007, (code, reason)
        f = read_data(u)
        assert f.opcode == CLOSE and f.close[0] == 1007 and f.masked
    finally:
        c.close()
        u.close()
    assert_relay_serves(gw, raw)


@pytest.mark.parametrize("code", [999, 1004, 1005, 1006, 1015, 2000, 5000])
def test_close_codes_invalid_on_the_wire_close_1002_from_either_side(gw, raw, code):
    c, u = raw_pair(gw, raw)
    try:
        c.sendall(frame(close_payload(code), opcode=CLOSE))
        # The upstream is told first; the client's close waits for the upstream's answer.
        f = read_data(u)
        assert f.opcode == CLOSE and f.close[0] == 1002
        u.sendall(up_frame(close_payload(1002), opcode=CLOSE))
        frames, (got, _) = read_until_close(c)
        assert frames == [] and got == 1002
    finally:
        c.close()
        u.close()
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame(close_payload(code), opcode=CLOSE))
        frames, (got, _) = read_until_close(c)
        assert frames == [] and got == 1002
    finally:
        c.close()
        u.close()


# ---------------------------------------------------------------------------------------------
# 2. Pings are hop by hop.

def test_client_ping_is_answered_by_the_gateway_and_not_forwarded(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        c.sendall(frame(b"ping-payload\x00\xff", opcode=PING) + frame("after the ping"))
        f = read_any(c)
        assert (f.opcode, f.payload, f.masked) == (PONG, b"ping-payload\x00\xff", False)
        f = read_any(u)  # the first thing the upstream sees is the data frame, not the ping
        assert (f.opcode, f.payload) == (TEXT, b"after the ping")
    finally:
        c.close()
        u.close()


def test_upstream_ping_is_answered_by_the_gateway_and_not_forwarded(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame(b"up-ping", opcode=PING) + up_frame("after the upstream ping"))
        f = read_any(u)
        assert (f.opcode, f.payload) == (PONG, b"up-ping")
        assert f.masked  # the gateway is the upstream's client: its frames are masked
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"after the upstream ping")
    finally:
        c.close()
        u.close()


def test_pong_to_the_client_waits_for_the_end_of_a_frame_being_forwarded(gw, raw):
    """The upstream's frame is half through when the client pings: the gateway's pong goes to
    the client after that frame, never inside it."""
    c, u = raw_pair(gw, raw)
    try:
        body = bytes(range(100))
        u.sendall(up_frame(b"", opcode=BINARY, length=100) + body[:10])
        assert exact(c, 2 + 10) == bytes([0x80 | BINARY, 100]) + body[:10]
        c.sendall(frame(b"mid", opcode=PING))
        time.sleep(0.1)  # let the ping be handled while the frame is still open
        u.sendall(body[10:])
        assert exact(c, 90) == body[10:]
        f = read_any(c)
        assert (f.opcode, f.payload) == (PONG, b"mid")
    finally:
        c.close()
        u.close()


# ---------------------------------------------------------------------------------------------
# 3. Fragments stay fragments, and a fragmented message counts once.

def test_fragmented_message_with_ping_inside_arrives_whole_and_counts_once(gw, up):
    before = metrics(gw)
    status, _, c = ws_client(gw.port, "/count")
    try:
        assert status == 101
        c.sendall(frame("ab", fin=False) + frame(b"p", opcode=PING) + frame("cd", opcode=CONT))
        f = read_any(c)
        assert (f.opcode, f.payload) == (PONG, b"p")
        f = read_any(c)
        assert (f.opcode, f.payload, f.fin) == (TEXT, b"abcd", True)  # the upstream's echo
        assert up.received == ["abcd"]

        sess = only_session(session_stub(gw), "count")
        assert sess.kind == "websocket"
        assert (sess.messages_in, sess.bytes_in) == (1, 4)
        assert (sess.messages_out, sess.bytes_out) == (1, 4)
        after = metrics(gw)
        d = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)  # noqa: E731
        assert d("wsgate_messages_total", route="count", direction="in") == 1
        assert d("wsgate_message_bytes_total", route="count", direction="in") == 4
        assert d("wsgate_messages_total", route="count", direction="out") == 1
    finally:
        c.close()


def test_upstream_fragments_reach_the_client_as_fragments(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame("one|", fin=False) + up_frame(b"", opcode=PING) +
                  up_frame("two|", opcode=CONT, fin=False) + up_frame("three", opcode=CONT))
        got = [read_any(c) for _ in range(3)]
        assert [(f.opcode, f.fin, f.payload) for f in got] == [
            (TEXT, False, b"one|"), (CONT, False, b"two|"), (CONT, True, b"three")]
        assert read_any(u).opcode == PONG
    finally:
        c.close()
        u.close()


# ---------------------------------------------------------------------------------------------
# 4. Bytes that arrive together with a handshake.

def test_frame_pipelined_behind_the_request_head_reaches_the_upstream(gw, up):
    status, _, c = ws_client(gw.port, "/proxy", extra=frame("early bird") + frame("second"))
    try:
        assert status == 101
        assert read_any(c).payload == b"early bird"
        assert read_any(c).payload == b"second"
        assert up.received == ["early bird", "second"]
    finally:
        c.close()


def test_frames_in_the_same_packet_as_the_upstream_101_reach_the_client(gw, raw):
    raw.answer = lambda acc, _h: (switching_protocols(acc) + up_frame("greeting") +
                                  up_frame(b"\x01\x02", opcode=BINARY))
    c, u = raw_pair(gw, raw)
    try:
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"greeting")
        f = read_any(c)
        assert (f.opcode, f.payload) == (BINARY, b"\x01\x02")
    finally:
        c.close()
        u.close()


def test_close_in_the_same_packet_as_the_upstream_101_reaches_the_client(gw, raw):
    raw.answer = lambda acc, _h: switching_protocols(acc) + up_frame(
        close_payload(4000, "closed at once"), opcode=CLOSE)
    c, u = raw_pair(gw, raw)
    try:
        frames, close = read_until_close(c)
        assert frames == [] and close == (4000, "closed at once")
        c.sendall(frame(close_payload(4000, "closed at once"), opcode=CLOSE))  # our echo
        f = read_data(u)  # the gateway's echo of the upstream's close
        assert f.opcode == CLOSE and f.close == (4000, "closed at once")
        read_to_end(c)  # and the client's connection ends
    finally:
        c.close()
        u.close()


def test_upstream_empty_close_frame_reaches_the_client_empty(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame(b"", opcode=CLOSE))
        f = read_any(c)
        assert (f.opcode, f.payload) == (CLOSE, b"")  # no status in, no status out
        f = read_data(u)  # the gateway's echo to the upstream: empty too
        assert (f.opcode, f.payload) == (CLOSE, b"")
    finally:
        c.close()
        u.close()


def test_upstream_101_written_one_byte_at_a_time(gw, raw):
    raw.answer = lambda acc, _h: [bytes([b]) for b in switching_protocols(acc) + up_frame("hi")]
    c, u = raw_pair(gw, raw)
    try:
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"hi")
        assert_echo_through(c, u)
    finally:
        c.close()
        u.close()


def test_client_message_and_close_pipelined_behind_the_request_head(gw, up):
    extra = frame("last words") + frame(close_payload(4003, "gone early"), opcode=CLOSE)
    status, _, c = ws_client(gw.port, "/proxy", extra=extra)
    try:
        assert status == 101
        frames, close = read_until_close(c)  # the echo of our close (the echo of the text may
        assert close == (4003, "gone early")  # or may not come first: the upstream decides)
    finally:
        c.close()
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.received == ["last words"]
    assert up.closed == [(4003, "gone early")]


def test_upstream_eof_before_its_101_is_502(gw, raw):
    raw.answer = lambda acc, _h: b"HTTP/1.1 101 Switching"  # half a status line, then EOF
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        client = pool.submit(ws_client, gw.port, "/raw")  # waits for the gateway's answer
        u, _ = raw.take()
        u.close()
        status, _, c = client.result(timeout=10)
        c.close()
    # The gateway waited for the rest of the head, then answered when the upstream went away
    # (well before the route's 5 s connect timeout, which would be a 504).
    assert status == 502


# ---------------------------------------------------------------------------------------------
# 5. A frame split anywhere.

PAYLOAD_200 = bytes(range(200))


def test_frame_sent_one_byte_at_a_time_arrives_intact(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        data = frame(PAYLOAD_200, opcode=BINARY)
        for i in range(len(data)):
            c.send(data[i:i + 1])
            time.sleep(0.001)
        f = read_any(u)
        assert (f.opcode, f.fin, f.payload) == (BINARY, True, PAYLOAD_200)
        # Verbatim: the client's masking key goes upstream with its frame.
        assert f.masked
    finally:
        c.close()
        u.close()


@pytest.mark.parametrize("cuts", [(1, 3, 6), (2, 4, 8), (1, 100, 150)])
def test_frame_split_in_three_pieces_arrives_intact(gw, up, cuts):
    status, _, c = ws_client(gw.port, "/proxy")
    try:
        assert status == 101
        data = frame(PAYLOAD_200, opcode=BINARY)  # header: 2 + 2 (length 126) + 4 (mask) bytes
        a, b, d = cuts
        for piece in (data[:a], data[a:b], data[b:d], data[d:]):
            c.sendall(piece)
            time.sleep(0.02)
        f = read_any(c)
        assert (f.opcode, f.payload) == (BINARY, PAYLOAD_200)
        assert up.received == [PAYLOAD_200]
    finally:
        c.close()


def test_client_frame_goes_upstream_with_the_clients_own_masking_key(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        sent = frame("verbatim", mask=b"\xa1\xb2\xc3\xd4")
        c.sendall(sent)
        assert exact(u, len(sent)) == sent
    finally:
        c.close()
        u.close()


# ---------------------------------------------------------------------------------------------
# 6. max_message_bytes, both directions, decided from the frame header.

def test_oversize_client_header_closes_1009_without_waiting_for_the_payload(gw, up):
    before = hits(gw, "small", "max_message_bytes")
    status, _, c = ws_client(gw.port, "/small")
    try:
        assert status == 101
        c.sendall(frame("x" * 100))  # exactly the limit: allowed
        assert read_any(c).payload == b"x" * 100
        # Only the header (+ mask key) of a 1000-byte frame: the payload never comes.
        c.sendall(frame(b"", opcode=BINARY, length=1000))
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1009
    finally:
        c.close()
    wait_for(lambda: hits(gw, "small", "max_message_bytes") == before + 1, what="1 size hit")
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed[0][0] == 1009


def test_default_size_limit_applies_to_a_route_without_limits(gw, up):
    """A header announcing 2^40 bytes on /proxy (built-in max_message_bytes, 16 MiB) is refused
    at once; a length with its top bit set is a protocol error."""
    for length, code in ((1 << 40, 1009), (1 << 63, 1002)):
        status, _, c = ws_client(gw.port, "/proxy")
        try:
            assert status == 101
            c.sendall(bytes([0x82, 0x80 | 127]) + length.to_bytes(8, "big") + MASK)
            frames, (got, _) = read_until_close(c)
            assert frames == [] and got == code, (length, got)
        finally:
            c.close()


def test_oversize_fragmented_client_message_closes_1009(gw, up):
    """60 + 60 bytes in two frames: each frame is under the limit, the message is not."""
    before = hits(gw, "small", "max_message_bytes")
    status, _, c = ws_client(gw.port, "/small")
    try:
        assert status == 101
        c.sendall(frame("a" * 60, fin=False) + frame(b"", opcode=CONT, length=60))
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1009
    finally:
        c.close()
    wait_for(lambda: hits(gw, "small", "max_message_bytes") == before + 1, what="1 size hit")


def test_oversize_upstream_header_closes_client_1009(gw, raw):
    before = hits(gw, "small-raw", "max_message_bytes")
    c, u = raw_pair(gw, raw, path="/small-raw")
    try:
        u.sendall(up_frame("y" * 100))
        assert read_any(c).payload == b"y" * 100
        u.sendall(up_frame(b"", opcode=BINARY, length=1000))  # header only
        frames, (code, _) = read_until_close(c)
        assert frames == [] and code == 1009
        f = read_data(u)
        assert f.opcode == CLOSE and f.close[0] == 1009
    finally:
        c.close()
        u.close()
    wait_for(lambda: hits(gw, "small-raw", "max_message_bytes") == before + 1,
             what="1 size hit")


# ---------------------------------------------------------------------------------------------
# 7. messages_per_second on a websocket route.

def test_rate_drop_tells_the_client_and_does_not_forward(gw, up):
    before = hits(gw, "rate-drop", "messages_per_second")

    async def main():
        async with connect(gw.url("/rate-drop")) as ws:
            for i in range(5):
                await ws.send(f"m{i}")
            got = [await asyncio.wait_for(ws.recv(), 5) for _ in range(5)]
            # The echoes come from the upstream, the refusals from the gateway: any interleaving.
            assert sorted(got) == sorted(["m0", "m1", RATE_LIMITED, RATE_LIMITED, RATE_LIMITED])
            assert ws.open
    asyncio.run(main())
    # The client's close follows its messages on the same stream: once the upstream saw it, it
    # saw every message it was ever going to get.
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.received == ["m0", "m1"]
    wait_for(lambda: hits(gw, "rate-drop", "messages_per_second") == before + 3,
             what="3 rate hits")


def test_rate_drop_drops_a_fragmented_message_whole(gw, up):
    """Every frame of a refused message stays behind: a stray continuation frame would break the
    upstream's protocol (it would close 1002 instead of seeing the client's 1000)."""
    status, _, c = ws_client(gw.port, "/rate-drop")
    try:
        assert status == 101
        c.sendall(frame("one") + frame("two"))  # the burst of 2
        assert [read_any(c).payload for _ in range(2)] == [b"one", b"two"]
        c.sendall(frame("a", fin=False) + frame("b", opcode=CONT, fin=False) +
                  frame(b"", opcode=PING) + frame("c", opcode=CONT))
        got = [read_any(c) for _ in range(2)]
        assert sorted((f.opcode, f.payload) for f in got) == [
            (TEXT, RATE_LIMITED.encode()), (PONG, b"")]  # one refusal for the whole message
        c.sendall(frame(close_payload(1000), opcode=CLOSE))
        _, close = read_until_close(c)
        assert close == (1000, "")
    finally:
        c.close()
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed == [(1000, "")]
    assert up.received == ["one", "two"]


def test_rate_close_closes_1008_and_does_not_forward(gw, up):
    before = hits(gw, "rate-close", "messages_per_second")

    async def main():
        async with connect(gw.url("/rate-close")) as ws:
            await ws.send("first")
            assert await asyncio.wait_for(ws.recv(), 5) == "first"
            await ws.send("second")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1008, "message rate limit exceeded")
    asyncio.run(main())
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.received == ["first"]
    wait_for(lambda: hits(gw, "rate-close", "messages_per_second") == before + 1,
             what="1 rate hit")


# ---------------------------------------------------------------------------------------------
# 8. send_queue_bytes on the client leg, fed by an upstream that floods a client that reads
#    nothing.

class Flood:
    """Sends `total` 64 KiB binary messages numbered %06d from the upstream socket on a thread
    (each in two frames when `fragmented`); stops at the first error (the gateway closed the
    leg)."""

    def __init__(self, sock, total, fragmented=False):
        self.sock, self.total, self.sent, self.error = sock, total, 0, None
        self.fragmented = fragmented
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for i in range(self.total):
                body = b"%06d" % i + b"x" * (65536 - 6)
                if self.fragmented:
                    self.sock.sendall(up_frame(body[:1000], opcode=BINARY, fin=False) +
                                      up_frame(body[1000:], opcode=CONT))
                else:
                    self.sock.sendall(up_frame(body, opcode=BINARY))
                self.sent += 1
        except OSError as e:
            self.error = e

    def stop(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked sendall
        except OSError:
            pass
        self.thread.join(30)


def test_send_queue_bound_close_policy_closes_1008(gw, raw):
    before = hits(gw, "slow", "send_queue_bytes")
    c, u = raw_pair(gw, raw, path="/slow", rcvbuf=4096)
    flood = Flood(u, 512)  # 32 MiB: far more than the socket buffers and the 64 KiB bound
    try:
        wait_for(lambda: hits(gw, "slow", "send_queue_bytes") == before + 1, 60,
                 what="the send-queue hit")
        # Read what was queued before the close frame, promptly (the gateway waits for the close
        # handshake a few seconds only).
        frames, close = read_until_close(c)
        assert close == (1008, "client too slow")
        assert all(f.opcode in (BINARY, CONT) for f in frames)
    finally:
        flood.stop()
        c.close()
        u.close()
    assert hits(gw, "slow", "send_queue_bytes") == before + 1


@pytest.mark.parametrize("fragmented", [False, True], ids=["whole", "fragmented"])
def test_send_queue_bound_drop_oldest_keeps_order_and_the_newest(gw, raw, fragmented):
    """Messages are dropped whole: a fragmented message is never cut."""
    before = hits(gw, "drop-oldest", "send_queue_bytes")
    c, u = raw_pair(gw, raw, path="/drop-oldest", rcvbuf=4096)
    total = 256  # 16 MiB towards a client that reads nothing meanwhile
    flood = Flood(u, total, fragmented)
    try:
        flood.thread.join(120)
        assert flood.sent == total, flood.error
        received = []
        while not received or received[-1] != total - 1:
            f = read_any(c)
            if fragmented:
                assert (f.opcode, f.fin, len(f.payload)) == (BINARY, False, 1000), f
                rest = read_any(c)
                assert (rest.opcode, rest.fin, len(rest.payload)) == (CONT, True, 64536), rest
            else:
                assert (f.opcode, f.fin, len(f.payload)) == (BINARY, True, 65536), f
            received.append(int(f.payload[:6]))
        assert received == sorted(received)
        assert len(set(received)) == len(received)
        assert len(received) < total
        # The session is still open both ways.
        u.sendall(up_frame("after"))
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"after")
        c.sendall(frame("client still here"))
        assert read_any(u).payload == b"client still here"
    finally:
        flood.stop()
        c.close()
        u.close()
    # Every message was delivered, or dropped and counted.
    wait_for(lambda: hits(gw, "drop-oldest", "send_queue_bytes") == before + total - len(received),
             what="one hit per dropped message")


# ---------------------------------------------------------------------------------------------
# 9. SessionService on a websocket session.

def test_send_to_session_waits_for_the_upstreams_fragmented_message(gw, raw):
    s = stubs()
    api = session_stub(gw)
    c, u = raw_pair(gw, raw, path="/raw-sess")
    try:
        sess = only_session(api, "raw-sess")
        assert sess.kind == "websocket" and f":{RAW_PORT}/s" in sess.bound_to
        assert sess.state == s.session.SESSION_STATE_OPEN

        u.sendall(up_frame("part one|", fin=False))
        f = read_any(c)  # the gateway forwarded the first fragment: it is mid-message now
        assert (f.opcode, f.fin, f.payload) == (TEXT, False, b"part one|")
        api.SendToSession(s.session.SendToSessionRequest(id=sess.id, text="injected"), timeout=10)
        api.SendToSession(s.session.SendToSessionRequest(id=sess.id, binary=b"\x00inj"),
                          timeout=10)
        u.sendall(up_frame("part two", opcode=CONT))
        got = [read_any(c) for _ in range(3)]
        assert [(f.opcode, f.fin, f.payload) for f in got] == [
            (CONT, True, b"part two"), (TEXT, True, b"injected"), (BINARY, True, b"\x00inj")]

        # Inside a frame being forwarded: after the frame.
        body = bytes(range(100))
        u.sendall(up_frame(b"", opcode=BINARY, length=100) + body[:10])
        assert exact(c, 12) == bytes([0x80 | BINARY, 100]) + body[:10]
        api.SendToSession(s.session.SendToSessionRequest(id=sess.id, text="after the frame"),
                          timeout=10)
        u.sendall(body[10:])
        assert exact(c, 90) == body[10:]
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"after the frame")

        # Outside a message it goes at once.
        api.SendToSession(s.session.SendToSessionRequest(id=sess.id, text="direct"), timeout=10)
        f = read_any(c)
        assert (f.opcode, f.payload) == (TEXT, b"direct")

        got = api.GetSession(s.session.GetSessionRequest(id=sess.id), timeout=10)
        assert got.messages_out == 6  # the upstream's two messages and the four sent

        api.CloseSession(s.session.CloseSessionRequest(id=sess.id, code=4321, reason="bye"),
                         timeout=10)
        frames, close = read_until_close(c)
        assert frames == [] and close == (4321, "bye")
        f = read_data(u)
        assert f.opcode == CLOSE and f.close == (4321, "bye") and f.masked
    finally:
        c.close()
        u.close()

    def gone():
        try:
            api.GetSession(s.session.GetSessionRequest(id=sess.id), timeout=5)
            return False
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.NOT_FOUND
    wait_for(gone, what="the session gone")


# Regression (this test found it): the relay once decided to drop a message only at its first
# frame, so the continuation frames of a message that started before a close frame went out
# were still forwarded after it.
def test_nothing_follows_the_close_frame_when_closed_inside_a_fragmented_message(gw, raw):
    """CloseSession while the upstream's fragmented message is half through: the client gets
    the close, and no data frame after it (RFC 6455 5.5.1: nothing is sent after a close
    frame), even though the upstream sends the final fragment before it reads our close."""
    s = stubs()
    api = session_stub(gw)
    c, u = raw_pair(gw, raw, path="/raw-sess")
    try:
        sess = only_session(api, "raw-sess")
        u.sendall(up_frame("part one|", fin=False))
        f = read_any(c)
        assert (f.opcode, f.fin) == (TEXT, False)
        api.CloseSession(s.session.CloseSessionRequest(id=sess.id, code=4321, reason="bye"),
                         timeout=10)
        f = read_any(c)
        assert (f.opcode, f.close) == (CLOSE, (4321, "bye"))
        u.sendall(up_frame("part two", opcode=CONT))  # crossed our close on the wire
        time.sleep(0.2)
        c.sendall(frame(close_payload(4321, "bye"), opcode=CLOSE))  # the client's echo
        after = read_to_end(c)
        assert after == b"", f"bytes after the close frame: {after!r}"
    finally:
        c.close()
        u.close()


# Regression (this test found it): the relay once decided to drop a message only at its first
# frame, so the continuation frames of a message that started before a close frame went out
# were still forwarded after it.
def test_nothing_follows_the_close_frame_towards_the_upstream(gw, raw):
    """The same towards the upstream: the client's fragmented message is half through when
    CloseSession closes both legs; the client's final fragment, sent before it read our close,
    must not reach the upstream after the gateway's close frame."""
    s = stubs()
    api = session_stub(gw)
    c, u = raw_pair(gw, raw, path="/raw-sess")
    try:
        sess = only_session(api, "raw-sess")
        c.sendall(frame("part one|", fin=False))
        f = read_any(u)
        assert (f.opcode, f.fin) == (TEXT, False)
        api.CloseSession(s.session.CloseSessionRequest(id=sess.id, code=4321, reason="bye"),
                         timeout=10)
        f = read_any(u)
        assert (f.opcode, f.close) == (CLOSE, (4321, "bye"))
        c.sendall(frame("part two", opcode=CONT))  # crossed the close on the wire
        time.sleep(0.2)
        u.sendall(up_frame(close_payload(4321, "bye"), opcode=CLOSE))  # the upstream's echo
        u.shutdown(socket.SHUT_WR)  # a server ends the TCP connection first (RFC 6455 7.1.1)
        after = read_to_end(u)
        assert after == b"", f"bytes after the close frame: {after!r}"
    finally:
        c.close()
        u.close()


def test_close_session_reaches_a_python_upstream(gw, up):
    s = stubs()
    api = session_stub(gw)

    async def main():
        async with connect(gw.url("/sess")) as ws:
            await ws.send("hi")
            assert await asyncio.wait_for(ws.recv(), 5) == "hi"
            sess = await asyncio.to_thread(only_session, api, "sess")
            await asyncio.to_thread(
                api.CloseSession, s.session.CloseSessionRequest(id=sess.id, code=4321, reason="bye"),
                timeout=10)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (4321, "bye")
    asyncio.run(main())
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed == [(4321, "bye")]


# ---------------------------------------------------------------------------------------------
# 10. Time-based limits on a websocket route.

def test_ping_timeout_closes_a_client_that_does_not_answer(gw, up):
    before = hits(gw, "pings", "ping_timeout_ms")

    async def responsive():
        # python3-websockets answers pings by itself: the connection outlives many intervals.
        async with connect(gw.url("/pings")) as ws:
            for _ in range(8):  # 2.4 s: past the silent client's ping timeout
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)
            await ws.send("still here")
            assert await asyncio.wait_for(ws.recv(), 5) == "still here"

    status, _, silent = ws_client(gw.port, "/pings")
    try:
        assert status == 101
        asyncio.run(responsive())
        frames, close = read_until_close(silent)
        assert frames and frames[0].opcode == PING  # it was pinged first
        assert all(f.opcode == PING for f in frames)
        assert close == (1001, "ping timeout")
    finally:
        silent.close()
    wait_for(lambda: hits(gw, "pings", "ping_timeout_ms") == before + 1, what="1 ping-timeout hit")


# Regression (this test found it): when the close handshake timed out (5 s) the relay once just
# closed both sockets, and the upstream, to which no close frame had been sent, saw 1006.
def test_upstream_gets_a_close_frame_when_a_dead_client_never_answers_the_close(gw, up):
    """The gateway closed the client (ping timeout) and the client never answers the close nor
    ends its TCP connection (it is dead): the upstream must still get a close frame (the previous
    data path sent 1001 "client went away" when the client's close handshake timed out), not a
    TCP connection that just ends (1006 at the upstream)."""
    status, _, silent = ws_client(gw.port, "/pings")
    try:
        assert status == 101
        _, close = read_until_close(silent)
        assert close == (1001, "ping timeout")
        # Neither an echo nor a FIN from us: wait past the gateway's close-handshake timeout.
        wait_for(lambda: len(up.closed) == 1, 20, what="the upstream's close")
        assert up.closed[0][0] == 1001, up.closed
    finally:
        silent.close()


def test_idle_timeout_closes_an_idle_proxied_session_1001(gw, up):
    before = hits(gw, "idle", "idle_timeout_ms")

    async def main():
        async with connect(gw.url("/idle")) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 5) == "hello"
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1001, "idle timeout")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "idle", "idle_timeout_ms") == before + 1, what="1 idle hit")


def test_max_lifetime_closes_a_proxied_session_1001(gw, up):
    before = hits(gw, "lifetime", "max_lifetime_ms")

    async def main():
        async with connect(gw.url("/lifetime")) as ws:
            for i in range(3):  # traffic does not extend a lifetime
                await ws.send(f"m{i}")
                assert await asyncio.wait_for(ws.recv(), 5) == f"m{i}"
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            assert (ws.close_code, ws.close_reason) == (1001, "session lifetime exceeded")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "lifetime", "max_lifetime_ms") == before + 1, what="1 lifetime hit")
    wait_for(lambda: len(up.closed) == 1, what="the upstream's close")
    assert up.closed == [(1001, "session lifetime exceeded")]


# ---------------------------------------------------------------------------------------------
# 11. Upstream handshakes.

def test_upstream_given_by_host_name(gw, up):
    async def main():
        async with connect(gw.url("/byname")) as ws:
            await ws.send("by name")
            assert await asyncio.wait_for(ws.recv(), 5) == "by name"
    asyncio.run(main())
    assert up.received == ["by name"]
    assert up.connections[0].path == "/up"


def _refused_status(gw, raw, answer, protocols=None):
    before = metric(metrics(gw), "wsgate_connections_total", route="raw", outcome="upstream_error")
    raw.answer = answer
    status, _, c = ws_client(gw.port, "/raw", protocols=protocols)
    c.close()
    u, _ = raw.take()  # the upstream was reached and answered
    u.close()
    after = metric(metrics(gw), "wsgate_connections_total", route="raw", outcome="upstream_error")
    assert after == before + 1
    return status


def test_upstream_wrong_accept_is_502(gw, raw):
    assert _refused_status(gw, raw, lambda acc, _h: switching_protocols(
        accept_for("AAAAAAAAAAAAAAAAAAAAAA=="))) == 502
    raw.answer = None
    assert_relay_serves(gw, raw)


def test_upstream_answering_200_is_502(gw, raw):
    assert _refused_status(gw, raw, lambda acc, _h: (
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok")) == 502


def test_upstream_picking_a_subprotocol_not_offered_is_502(gw, raw):
    answer = lambda acc, _h: switching_protocols(acc, "Sec-WebSocket-Protocol: chat.v9\r\n")  # noqa: E731
    assert _refused_status(gw, raw, answer, protocols=["chat.v1", "chat.v2"]) == 502
    # The same upstream answer with a protocol the client offered is accepted, and the client's
    # offers reached the upstream.
    raw.answer = lambda acc, _h: switching_protocols(acc, "Sec-WebSocket-Protocol: chat.v2\r\n")
    status, headers, c = ws_client(gw.port, "/raw", protocols=["chat.v1", "chat.v2"])
    u, req = raw.take()
    try:
        assert status == 101
        assert headers["sec-websocket-protocol"] == "chat.v2"
        assert req["sec-websocket-protocol"] == "chat.v1, chat.v2"
    finally:
        c.close()
        u.close()


def test_extension_offers_are_not_passed_on(gw, raw):
    """The relay forwards frames verbatim, so it cannot let an extension be negotiated: the
    client's offer does not go upstream and the client's 101 selects none."""
    status, headers, c = ws_client(gw.port, "/raw",
                                   headers="Sec-WebSocket-Extensions: permessage-deflate\r\n")
    u, req = raw.take()
    try:
        assert status == 101
        assert "sec-websocket-extensions" not in req
        assert "sec-websocket-extensions" not in headers
        assert_echo_through(c, u)
    finally:
        c.close()
        u.close()


def test_upstream_selecting_an_extension_is_502(gw, raw):
    assert _refused_status(gw, raw, lambda acc, _h: switching_protocols(
        acc, "Sec-WebSocket-Extensions: permessage-deflate\r\n")) == 502


# ---------------------------------------------------------------------------------------------
# 12. An upstream that dies mid-frame.

def test_upstream_drop_mid_frame_ends_the_client_and_gateway_keeps_serving(gw, raw, up):
    c, u = raw_pair(gw, raw)
    try:
        u.sendall(up_frame(b"", opcode=BINARY, length=1000) + b"0123456789")
        time.sleep(0.1)
        u.close()
        # Whatever arrives (the cut frame's first bytes, maybe a close), the connection ends.
        read_to_end(c)
    finally:
        c.close()
    assert_relay_serves(gw, raw)
    assert_proxy_serves(gw)


def test_client_drop_mid_frame_ends_the_upstream_and_gateway_keeps_serving(gw, raw):
    c, u = raw_pair(gw, raw)
    try:
        c.sendall(frame(b"", opcode=BINARY, length=1000)[:8] + b"0123456789")
        time.sleep(0.1)
        c.close()
        # The upstream got the cut frame's first bytes; then its connection ends (no close frame
        # can follow half a frame).
        data = read_to_end(u)
        assert data.startswith(bytes([0x80 | BINARY, 0x80 | 126]) + (1000).to_bytes(2, "big"))
    finally:
        c.close()
        u.close()
    assert_relay_serves(gw, raw)


# ---------------------------------------------------------------------------------------------
# Regression: a FIN that arrives in the same read as the upstream's close echo.

def test_session_ends_when_the_upstreams_close_echo_and_fin_arrive_together(gw, raw):
    """The upstream answers our close with its close frame and its FIN in one go, so both reach
    the gateway before it reads: the read returns the close frame (a short read) and only the
    next read would return EOF, while the socket's readiness edge is already spent. The session
    must still end at once, not when the 5 s close-handshake deadline cuts it. (An early relay
    that armed its read without re-registering the socket left such sessions in CLOSE-WAIT.)"""
    api = session_stub(gw)
    c, u = raw_pair(gw, raw, path="/raw-fin")  # a route of its own: no other test's sessions
    try:
        assert_echo_through(c, u)
        c.sendall(frame(close_payload(1000, "done"), opcode=CLOSE))
        f = read_any(u)
        assert f.opcode == CLOSE
        # Close frame and FIN in one go (nothing waits in between).
        u.sendall(up_frame(close_payload(1000, "done"), opcode=CLOSE))
        u.shutdown(socket.SHUT_WR)
        read_to_end(c)

        def gone():
            got = api.ListSessions(stubs().session.ListSessionsRequest(route="raw-fin"),
                                   timeout=10)
            return len(got.sessions) == 0
        # Bounded well under the 5 s close deadline, so the deadline cannot be what ended it.
        wait_for(gone, timeout=2.5, what="the session to end after the upstream's FIN")
    finally:
        c.close()
        u.close()
