"""Admission of connections before any route kind takes them: the RFC 6455 handshake checks
that every kind shares (version 13 only, a valid key), the connection limits applied to every
handshake whatever its version, the process-wide connection cap, descriptor exhaustion, and the
counter and log line every refused connection leaves behind.

Real wsgate, raw sockets (old drafts and broken handshakes cannot be produced by a WebSocket
library), a real upstream for the `websocket` kind.
"""

import asyncio
import resource
import socket
import threading
import time

import pytest

from wsgate_harness import Gateway, Upstream, free_port, http_request, parse_metrics, wait_for

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: proxy
    path: /proxy
    websocket: {upstreams: ["ws://127.0.0.1:%(upstream)d/"]}
  - name: room
    path: /room/{client_id}
    room: {}
  - name: per-address
    path: /per-address
    echo: {}
    limits: {max_connections_per_address: 2}
  - name: handshakes
    path: /handshakes
    echo: {}
    limits: {handshakes_per_second: 0.1}
"""

GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def handshake(port, path, version="13", key=GOOD_KEY, extra="", source="127.0.0.1",
              timeout=10):
    """Sends an upgrade request with the given version/key (None leaves the header out).
    Returns (status, headers, body, socket); the caller closes the socket."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    req = f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    if key is not None:
        req += f"Sec-WebSocket-Key: {key}\r\n"
    if version is not None:
        req += f"Sec-WebSocket-Version: {version}\r\n"
    req += extra + "\r\n"
    s.sendall(req.encode())
    return read_response(s) + (s,)


def read_response(s):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    body = rest
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def metric(gw, name, **labels):
    m = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
    return m.get((name, frozenset(labels.items())), 0.0)


def refused(gw, reason):
    return metric(gw, "wsgate_handshakes_refused_total", reason=reason)


HIXIE_76 = ("Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5\r\n"
            "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00\r\nOrigin: http://x\r\n")


@pytest.fixture(scope="module")
def gw():
    upstream_port = free_port()
    loop = asyncio.new_event_loop()
    upstream = Upstream(upstream_port)
    loop.run_until_complete(upstream.__aenter__())
    t = threading.Thread(target=loop.run_forever, daemon=True)
    t.start()
    try:
        with Gateway(CONFIG % {"upstream": upstream_port}, workers=2) as g:
            yield g
    finally:
        loop.call_soon_threadsafe(loop.stop)


@pytest.mark.parametrize("path", ["/echo", "/proxy", "/room/alice"])
def test_only_version_13_is_spoken_on_every_kind(gw, path):
    before = refused(gw, "bad_version")
    # hybi-07/08 (version 8): 426 naming the one version spoken; nothing else advertised.
    status, headers, body, s = handshake(gw.port, path, version="8")
    s.close()
    assert status == 426, body
    assert headers["sec-websocket-version"] == "13"
    assert b"version 13" in body
    # Hixie-76: no version header at all.
    status, headers, body, s = handshake(gw.port, path, version=None, key=None, extra=HIXIE_76)
    s.close()
    assert status == 400, body
    assert headers["sec-websocket-version"] == "13"
    # A missing version with a valid key (websocketpp answered 500 here).
    status, headers, _, s = handshake(gw.port, path, version=None)
    s.close()
    assert status == 400
    # Version 13 still works on the same path.
    status, _, _, s = handshake(gw.port, path)
    s.close()
    assert status == 101
    wait_for(lambda: refused(gw, "bad_version") == before + 3, what="3 bad_version refusals")


@pytest.mark.parametrize("key", ["abc", "", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZQ==, x",
                                 "!!!!!!!!!!!!!!!!!!!!!!=="])
def test_an_invalid_key_is_refused_400(gw, key):
    before = refused(gw, "bad_key")
    status, _, body, s = handshake(gw.port, "/echo", key=key)
    s.close()
    assert status == 400, body
    assert b"Sec-WebSocket-Key" in body
    wait_for(lambda: refused(gw, "bad_key") == before + 1, what="1 bad_key refusal")


def test_old_drafts_do_not_bypass_the_per_address_cap(gw):
    socks = []
    try:
        for _ in range(2):
            status, _, _, s = handshake(gw.port, "/per-address", source="127.0.0.21")
            socks.append(s)
            assert status == 101
        hits_before = metric(gw, "wsgate_limit_hits_total", route="per-address",
                             limit="max_connections_per_address")
        # Reproduction of the bypass: old drafts from the same address were all accepted.
        for version in ("8", "7", None):
            status, headers, _, s = handshake(gw.port, "/per-address", version=version,
                                              source="127.0.0.21")
            socks.append(s)
            assert status == 429
            assert int(headers["retry-after"]) >= 1
        wait_for(lambda: metric(gw, "wsgate_limit_hits_total", route="per-address",
                                limit="max_connections_per_address") == hits_before + 3,
                 what="3 per-address hits from old drafts")
    finally:
        for s in socks:
            s.close()


def test_old_drafts_count_against_the_handshake_rate(gw):
    socks = []
    try:
        status, _, _, s = handshake(gw.port, "/handshakes", version="8")
        socks.append(s)
        assert status == 426  # admitted by the rate, then refused for its version
        status, headers, _, s = handshake(gw.port, "/handshakes")
        socks.append(s)
        assert status == 429  # the old draft used the only handshake of this period
        assert int(headers["retry-after"]) >= 1
    finally:
        for s in socks:
            s.close()


def test_refused_connections_are_counted_by_reason_and_logged(gw):
    def raw(data):
        s = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
        s.sendall(data)
        status, _, _ = read_response(s)
        s.close()
        return status

    before = {r: refused(gw, r) for r in ("malformed", "head_too_large", "no_route")}
    assert raw(b"\x16\x03\x01 not http\r\n\r\n") == 400
    assert raw(b"GET /echo HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n") == 431
    status, _, _, s = handshake(gw.port, "/nowhere")
    s.close()
    assert status == 404
    assert http_request(gw.port, "/nowhere")[0] == 404
    wait_for(lambda: refused(gw, "malformed") == before["malformed"] + 1, what="malformed")
    wait_for(lambda: refused(gw, "head_too_large") == before["head_too_large"] + 1, what="431")
    wait_for(lambda: refused(gw, "no_route") == before["no_route"] + 2, what="2 no_route")
    wait_for(lambda: "refused a connection (malformed) from 127.0.0.1" in gw.output(),
             what="a log line for the malformed head")


def test_slowloris_heads_are_counted_and_logged_once_per_interval(gw):
    before = refused(gw, "head_timeout")
    socks = []
    try:
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", gw.port), timeout=30)
            s.sendall(b"GET /echo HTTP/1.1\r\nHost: x\r\n")  # never finished
            socks.append(s)
        # The head timeout is 10 s: every one of them is dropped and counted.
        wait_for(lambda: refused(gw, "head_timeout") == before + 20, timeout=30,
                 what="20 head_timeout refusals")
        for s in socks:
            s.settimeout(5)
            try:
                data = s.recv(100)
            except ConnectionResetError:  # closed with the unread head still in its buffer
                data = b""
            assert data == b""  # dropped without an answer
    finally:
        for s in socks:
            s.close()
    # At most one line per worker (2 here), not twenty: the rest are summed into the next line
    # for that reason.
    assert 1 <= gw.output().count("refused a connection (head_timeout)") <= 2


def test_process_max_connections_answers_503_and_frees_places():
    with Gateway(CONFIG % {"upstream": free_port()}, workers=2,
                 args=["--max-connections", "5"]) as g:
        socks = []
        try:
            for _ in range(5):
                status, _, _, s = handshake(g.port, "/echo")
                socks.append(s)
                assert status == 101
            status, headers, body, s = handshake(g.port, "/echo")
            socks.append(s)
            assert status == 503
            assert headers["retry-after"] == "1"
            assert b"max_connections" in body
            # The admin port is not counted against the cap.
            assert http_request(g.admin_port, "/metrics")[0] == 200
            assert refused(g, "over_capacity") == 1
        finally:
            for s in socks:
                s.close()

        def admitted():
            status, _, _, s = handshake(g.port, "/echo")
            s.close()
            return status == 101
        wait_for(admitted, what="a free place once the connections are gone")


def _limit_descriptors(n):
    def apply():
        resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
    return apply


def test_default_cap_follows_the_descriptor_limit_and_keeps_the_admin_port_reachable():
    # 256 descriptors: a reserve of 32, the rest halved (two legs per proxied connection): 112.
    with Gateway(CONFIG % {"upstream": free_port()}, workers=2,
                 preexec_fn=_limit_descriptors(256)) as g:
        socks = []
        statuses = []
        try:
            for _ in range(130):
                status, _, _, s = handshake(g.port, "/echo")
                socks.append(s)
                statuses.append(status)
            assert statuses.count(101) == 112
            assert statuses.count(503) == 130 - 112
            # What the cap is for: monitoring and health still answer at the cap.
            assert http_request(g.admin_port, "/metrics")[0] == 200
            assert http_request(g.admin_port, "/health")[0] == 200
        finally:
            for s in socks:
                s.close()


def test_descriptor_exhaustion_sheds_with_503_backs_off_and_recovers():
    # A cap above what the descriptors allow, so that accept() itself runs out.
    with Gateway(CONFIG % {"upstream": free_port()}, workers=1, args=["--max-connections", "10000"],
                 preexec_fn=_limit_descriptors(128)) as g:
        socks = []
        statuses = []
        started = time.monotonic()
        try:
            for _ in range(160):
                try:
                    status, _, _, s = handshake(g.port, "/echo", timeout=5)
                except (ConnectionError, OSError):
                    status, s = None, None
                statuses.append(status)
                if s is not None:
                    socks.append(s)
            assert 101 in statuses
            # Past the limit, clients are told (never left hanging until a timeout).
            assert 503 in statuses
            assert all(st in (101, 503) for st in statuses), statuses
            # Rate-limited warning: at most one line per 10 s, not one per failed accept.
            wait_for(lambda: "accept failed" in g.output(), what="the accept warning")
            assert g.output().count("accept failed") <= 1 + (time.monotonic() - started) // 10
        finally:
            for s in socks:
                s.close()
        # Recovers once descriptors are free again.
        def admitted():
            try:
                status, _, _, s = handshake(g.port, "/echo", timeout=5)
            except OSError:
                return False
            s.close()
            return status == 101
        wait_for(admitted, timeout=15, what="accepting again")
        assert refused(g, "descriptors_exhausted") >= 1
