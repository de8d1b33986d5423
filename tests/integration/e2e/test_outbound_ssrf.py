"""external_client as an attacker would use it: targets that name a forbidden address in another
spelling, a port scan through the answers, and POST /api/websocket/test-connection.

Real parts only: the wsgate binary, a python3-websockets echo server, plain listening sockets
that record whether anything connected to them, and the client (python3-websockets).
"""

import asyncio
import json
import socket

import pytest

from wsgate_harness import Gateway, Upstream, connect, free_port, http_request

ECHO_PORT = free_port()

CONFIG = """
routes:
  # Every ws:// target by name, but no internal address range.
  - name: ext-any
    path: /ext-any/{client_id}
    external_client:
      allowed_targets: ["ws://*:*"]
      connect_timeout_ms: 3000
  # The same with loopback allowed: the resolved path must still connect.
  - name: ext-loop
    path: /ext-loop/{client_id}
    external_client:
      allowed_targets: ["ws://*:*"]
      allowed_address_ranges: [loopback]
      connect_timeout_ms: 3000
"""

# Spellings of 127.0.0.1 (and of 0.0.0.0, which Linux also routes to this host) that an IP
# literal parser refuses but getaddrinfo accepts.
FORBIDDEN_HOSTS = ["localhost", "127.1", "0", "2130706433", "0x7f000001", "0177.0.0.1",
                   "LOCALHOST", "127.0.0.1", "[::1]"]


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG) as g:
        yield g


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


class Listener:
    """A plain TCP listener on 127.0.0.1 that never accepts: whether anything connected shows as a
    connection waiting in its backlog."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def connections(self):
        n = 0
        while True:
            try:
                c, _ = self.sock.accept()
            except BlockingIOError:
                return n
            c.close()
            n += 1

    def close(self):
        self.sock.close()


async def attempt(ws, url):
    """The events a connect_external to `url` produces, up to its final status."""
    await ws.send(json.dumps({"type": "connect_external", "url": url}))
    events = []
    while True:
        e = json.loads(await asyncio.wait_for(ws.recv(), 15))
        events.append(e)
        if e["type"] == "connection_status" and e["status"] in ("connected", "error"):
            return events


def shape(events):
    """What a client can tell apart: types, statuses, codes and messages (no timestamps)."""
    return [(e["type"], e.get("status"), e.get("code"), e.get("error") or e.get("message"))
            for e in events]


def test_forbidden_spellings_refused_without_connecting(gw):
    """Every spelling of loopback is refused before any connection is made, with the same answer
    whether a port is open or closed, and without the address it resolved to."""
    listener = Listener()
    closed_port = free_port()

    async def go():
        async with connect(gw.url("/ext-any/scanner")) as ws:
            for host in FORBIDDEN_HOSTS:
                open_events = await attempt(ws, f"ws://{host}:{listener.port}/")
                closed_events = await attempt(ws, f"ws://{host}:{closed_port}/")
                assert open_events[-1]["status"] == "error", (host, open_events)
                errors = [e for e in open_events if e["type"] == "connection_error"]
                assert errors and errors[0]["code"] == "NOT_ALLOWED", (host, open_events)
                assert shape(open_events) == shape(closed_events), host
                text = json.dumps(open_events)
                assert "127.0.0.1" not in text or host == "127.0.0.1", (host, text)
                assert "0.0.0.0" not in text and "::1" not in text.replace("[::1]", ""), text
    try:
        run(go())
        assert listener.connections() == 0, "the gateway connected to a refused address"
    finally:
        listener.close()


def test_allowed_range_connects_through_resolution(gw):
    """With loopback allowed, names and numeric forms are resolved and connected; the upstream
    sees the Host the client wrote. Upper-case schemes are normalised before the allow-list and
    the connection alike."""
    async def go():
        async with Upstream(ECHO_PORT) as up:
            async with connect(gw.url("/ext-loop/resolver")) as ws:
                for url in [f"ws://localhost:{ECHO_PORT}/", f"ws://127.1:{ECHO_PORT}/",
                            f"ws://2130706433:{ECHO_PORT}/", f"WS://127.0.0.1:{ECHO_PORT}/",
                            f"Ws://LocalHost:{ECHO_PORT}/"]:
                    events = await attempt(ws, url)
                    assert events[-1]["status"] == "connected", (url, events)
                    await ws.send(json.dumps({"type": "send_message", "content": "!headers"}))
                    got = None
                    while got is None:
                        e = json.loads(await asyncio.wait_for(ws.recv(), 15))
                        if e["type"] == "message_received":
                            got = e
                    host = url.split("://", 1)[1].split("/", 1)[0].lower()
                    assert f"host: {host}" in got["content"].lower(), (url, got)
                    await ws.send(json.dumps({"type": "disconnect_external"}))
                    while True:
                        e = json.loads(await asyncio.wait_for(ws.recv(), 15))
                        if e["type"] == "connection_status" and e["status"] == "disconnected":
                            break
            assert len(up.connections) == 5
    run(go())


def post_test(port, body, path="/api/websocket/test-connection", source="127.0.0.1"):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        conn.request("POST", path, body=json.dumps(body),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, json.loads(resp.read())
    finally:
        conn.close()


def test_test_connection_refuses_without_connecting_and_names_its_route():
    listener = Listener()
    with Gateway(CONFIG) as g:
        try:
            # Without ?route the first external_client route by name (ext-any) applies.
            status, _, a = post_test(g.port, {"url": f"ws://127.1:{listener.port}/"},
                                     source="127.0.0.11")
            assert status == 200 and a["status"] == "error" and a["code"] == "NOT_ALLOWED", a
            assert "127.0.0.1" not in json.dumps(a)
            status, _, b = post_test(g.port, {"url": f"ws://127.1:{free_port()}/"},
                                     source="127.0.0.11")
            assert (status, b["message"], b["code"]) == (200, a["message"], a["code"])
            assert listener.connections() == 0

            async def probe_loop():
                async with Upstream(ECHO_PORT):
                    loop = asyncio.get_running_loop()
                    return await loop.run_in_executor(
                        None, post_test, g.port, {"url": f"ws://localhost:{ECHO_PORT}/"},
                        "/api/websocket/test-connection?route=ext-loop", "127.0.0.12")
            status, _, c = run(probe_loop())
            assert status == 200 and c["status"] == "success", c
            status, _, d = post_test(g.port, {"url": f"ws://localhost:{ECHO_PORT}/"},
                                     path="/api/websocket/test-connection?route=ext-any",
                                     source="127.0.0.12")
            assert d["code"] == "NOT_ALLOWED", d
            status, _, e = post_test(g.port, {"url": f"ws://localhost:{ECHO_PORT}/"},
                                     path="/api/websocket/test-connection?route=nope",
                                     source="127.0.0.12")
            assert status == 404 and e["status"] == "error", e
        finally:
            listener.close()


def test_test_connection_rate_limited_per_address():
    with Gateway(CONFIG) as g:
        body = {"url": "ws://127.0.0.1:1/"}  # refused at once: no waiting on the network
        for _ in range(10):
            status, _, a = post_test(g.port, body, source="127.0.0.21")
            assert status == 200 and a["code"] == "NOT_ALLOWED", a
        status, headers, a = post_test(g.port, body, source="127.0.0.21")
        assert status == 429 and a["status"] == "error", (status, a)
        assert headers.get("retry-after") == "60"
        # Another address is not affected, and the service keeps serving.
        status, _, a = post_test(g.port, body, source="127.0.0.22")
        assert status == 200 and a["code"] == "NOT_ALLOWED"
        assert http_request(g.port, "/health")[0] == 200
