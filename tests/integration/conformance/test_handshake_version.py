"""RFC 6455 section 4.4 on every route kind: a handshake with a Sec-WebSocket-Version the server
does not speak (8, an old hybi draft; 14, a future one; none at all, Hixie-76 style) is refused
with 426 (400 when the header is missing) and a `Sec-WebSocket-Version: 13` header, and never
switches protocols; the same request with version 13 gets its 101 (so each route does work).

Raw sockets: python3-websockets would not send a wrong version. The `websocket` kind (the relay)
has a real upstream (a raw socket that answers like an RFC 6455 server) so that its 101 is real,
and the upstream is checked never to see a refused handshake, which would only pass the client's
bad version on."""

import base64
import hashlib
import os
import socket
import threading

import pytest

from wsgate_harness import Gateway, free_port

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
KEY = base64.b64encode(b"conformance-key!").decode()
UP_PORT = free_port()

CONFIG = f"""
routes:
  - name: echo
    path: /echo
    echo: {{}}
  - name: relay
    path: /relay
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
  - name: bridge
    path: /bridge
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
  - name: ext
    path: /ext/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
  - name: room
    path: /room/{{client_id}}
    room: {{}}
  - name: feed
    path: /feed/{{session_id}}
    pubsub: {{}}
"""

PATHS = {
    "echo": "/echo",
    "websocket": "/relay",
    "http_bridge": "/bridge",
    "external_client": "/ext/c1",
    "room": "/room/c1",
    "pubsub": "/feed/s1",
}


class RawUpstream:
    """Answers each handshake with a correct 101 and records the request heads it saw."""

    def __init__(self, port):
        self.heads = []
        self.sock = socket.create_server(("127.0.0.1", port))
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            head = read_head(conn)
            self.heads.append(head)
            key = header(head, "sec-websocket-key")
            accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
            conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                          f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            conn.settimeout(10)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass


def read_head(sock):
    sock.settimeout(10)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b"\r\n\r\n")[0].decode(errors="replace")


def header(head, name):
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def headers_named(head, name):
    return [line.partition(":")[2].strip() for line in head.split("\r\n")[1:]
            if line.partition(":")[0].strip().lower() == name]


def handshake(port, path, version):
    """Sends one upgrade request (version None: no version header); returns (status, head)."""
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", f"Sec-WebSocket-Key: {KEY}"]
    if version is not None:
        lines.append(f"Sec-WebSocket-Version: {version}")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = read_head(s)
    status = int(head.split(" ", 2)[1])
    return status, head


@pytest.fixture(scope="module")
def gw():
    up = RawUpstream(UP_PORT)
    g = Gateway(CONFIG).start()
    g.upstream = up
    try:
        yield g
    finally:
        g.stop()
        up.sock.close()
        out = g.output()
        g.tmp.cleanup()
    # Under WSGATE_SANITIZE a report shows here; a clean stop exits 0.
    assert "Sanitizer" not in out, out[-20000:]
    assert g.proc.returncode == 0, out[-5000:]


@pytest.mark.parametrize("kind", sorted(PATHS))
def test_version_13_switches_protocols(gw, kind):
    status, head = handshake(gw.port, PATHS[kind], "13")
    assert status == 101, head
    expected = base64.b64encode(hashlib.sha1((KEY + GUID).encode()).digest()).decode()
    assert header(head, "sec-websocket-accept") == expected


@pytest.mark.parametrize("version,want", [("8", 426), ("14", 426), (None, 400), ("13, 8", 426)])
@pytest.mark.parametrize("kind", sorted(PATHS))
def test_unsupported_version_is_refused_with_version_13(gw, kind, version, want):
    upstream_heads = len(gw.upstream.heads)
    status, head = handshake(gw.port, PATHS[kind], version)
    assert status == want, head
    # Exactly the one version this server speaks (RFC 6455 section 4.4), nothing it refuses.
    assert headers_named(head, "sec-websocket-version") == ["13"], head
    assert header(head, "sec-websocket-accept") is None, head
    if kind == "websocket":
        assert len(gw.upstream.heads) == upstream_heads, "a refused handshake reached the upstream"
    assert gw.proc.poll() is None
