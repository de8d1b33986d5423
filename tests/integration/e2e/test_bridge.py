"""The `http_bridge` (seeds 000/001) and `external_client` (seed 003) routes, end to end.

Real local peers started by the tests: an HTTP server (http.server in a thread: JSON, text,
binary, slow, huge, redirecting and 500-returning endpoints) and WebSocket servers
(python3-websockets: an echo server, one that rejects the handshake with 401, one that never
answers). The client is python3-websockets too, independent of websocketpp.
"""

import asyncio
import http
import json
import os
import re
import ssl
import subprocess
import tempfile
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import websockets

from wsgate_harness import (Gateway, Upstream, connect, free_port, http_request, metric,
                            parse_metrics, silent_upstream)

ECHO_PORT = free_port()
REJECT_PORT = free_port()
SILENT_PORT = free_port()
REFUSED_PORT = free_port()  # nothing listens here
WSS_PORT = free_port()

# A CA and a certificate for "localhost" only (no IP address), made by the openssl CLI.
CERTS = tempfile.mkdtemp(prefix="wsgate-e2e-certs-")
subprocess.run(
    "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key "
    "-out ca.pem -days 2 -subj /CN=wsgate-test-ca -addext basicConstraints=critical,CA:TRUE "
    "-addext keyUsage=critical,keyCertSign && "
    "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout leaf.key "
    "-out leaf.csr -subj /CN=localhost && "
    "printf 'subjectAltName=DNS:localhost\\n' > ext.cnf && "
    "openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem "
    "-days 2 -extfile ext.cnf",
    shell=True, cwd=CERTS, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status, body, content_type, extra=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self):
        url = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        query = urllib.parse.parse_qs(url.query)
        if url.path == "/api/resource":
            payload = {"response": "Success", "method": self.command, "query": query,
                       "body": json.loads(body) if body else None,
                       "x_custom": self.headers.get("X-Custom")}
            self._send(200, json.dumps(payload).encode(), "application/json")
        elif url.path == "/text":
            self._send(200, b"hello text", "text/plain; charset=utf-8")
        elif url.path == "/binary":
            self._send(200, b"\x00\x01\xfe\xff", "application/octet-stream")
        elif url.path == "/slow":
            ms = int(query.get("ms", ["500"])[0])
            time.sleep(ms / 1000)
            self._send(200, json.dumps({"slept": ms}).encode(), "application/json")
        elif url.path == "/huge":
            self._send(200, b"x" * (2 << 20), "text/plain")
        elif url.path == "/redirect":
            self._send(302, b"", "text/plain", [("Location", "/api/resource")])
        elif url.path == "/error":
            self._send(500, b"boom", "text/plain")
        else:
            self._send(404, b"not found", "text/plain")

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _handle


@pytest.fixture(scope="module")
def http_port():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


CONFIG = f"""
routes:
  - name: bridge
    path: /ws
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*", "http://localhost:*"]
      allowed_address_ranges: [loopback]
      max_response_bytes: 1048576
      request_timeout_ms: 10000
  - name: bridge-public
    path: /public
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*", "http://localhost:*"]
  - name: bridge-small
    path: /small
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
      max_in_flight: 2
      max_request_bytes: 100
  - name: bridge-follow
    path: /follow
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
      follow_redirects: true
  - name: ext
    path: /api/websocket/connect/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*", "ws://localhost:*"]
      allowed_address_ranges: [loopback]
      connect_timeout_ms: 1000
  - name: ext-public
    path: /ext-public/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*", "ws://localhost:*"]
  - name: ext-fast
    path: /ext-fast/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
      messages_per_minute: 5
  - name: ext-tls
    path: /ext-tls/{{client_id}}
    external_client:
      allowed_targets: ["wss://localhost:*", "wss://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{CERTS}/ca.pem"}}
  - name: ext-tls-system
    path: /ext-tls-system/{{client_id}}
    external_client:
      allowed_targets: ["wss://localhost:*"]
      allowed_address_ranges: [loopback]
"""


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG, env={"WEBSOCKET_DEBUG": "true"}) as g:
        yield g


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def ask(ws, message):
    await ws.send(message if isinstance(message, str) else json.dumps(message))
    return json.loads(await asyncio.wait_for(ws.recv(), 15))


# ---------------------------------------------------------------------------------------------
# http_bridge

def test_seed_python_client_example_as_written(gw, http_port):
    """Seed 000/001's client, verbatim except for the two addresses."""
    script = '''
import asyncio
import http
import websockets
import json

async def websocket_client():
    uri = "ws://localhost:8765/ws"
    async with websockets.connect(uri) as websocket:
        message = {
            "url": "http://example.com/api/resource",
            "method": "POST",
            "data": {"key": "value"}
        }
        await websocket.send(json.dumps(message))

        response = await websocket.recv()
        print("Response:", response)

asyncio.get_event_loop().run_until_complete(websocket_client())
'''
    script = script.replace("ws://localhost:8765/ws", f"ws://localhost:{gw.port}/ws")
    script = script.replace("http://example.com/api/resource",
                            f"http://127.0.0.1:{http_port}/api/resource")
    p = subprocess.run(["/usr/bin/python3", "-c", script], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, p.stderr.decode()
    out = p.stdout.decode()
    assert out.startswith("Response: "), out
    answer = json.loads(out[len("Response: "):])
    assert answer["status_code"] == 200
    assert answer["headers"]["Content-Type"] == "application/json"
    assert answer["content"]["response"] == "Success"
    assert answer["content"]["method"] == "POST"
    assert answer["content"]["body"] == {"key": "value"}


def test_methods_data_and_headers(gw, http_port):
    base = f"http://127.0.0.1:{http_port}"

    async def go():
        async with connect(gw.url("/ws")) as ws:
            for method in ("GET", "DELETE"):
                a = await ask(ws, {"url": f"{base}/api/resource?a=1", "method": method,
                                   "data": {"b": "x y", "n": 2}})
                assert a["status_code"] == 200
                assert a["content"]["method"] == method
                assert a["content"]["query"] == {"a": ["1"], "b": ["x y"], "n": ["2"]}
            for method in ("POST", "PUT", "PATCH"):
                a = await ask(ws, {"url": f"{base}/api/resource", "method": method,
                                   "data": {"k": [1, 2]}, "headers": {"X-Custom": "yes"}})
                assert a["content"]["method"] == method
                assert a["content"]["body"] == {"k": [1, 2]}
                assert a["content"]["x_custom"] == "yes"
            a = await ask(ws, {"url": f"{base}/api/resource", "method": "head"})
            assert a["status_code"] == 200 and a["content"] == ""
            a = await ask(ws, {"url": f"{base}/text", "method": "GET"})
            assert a["content"] == "hello text"
            a = await ask(ws, {"url": f"{base}/binary", "method": "GET"})
            assert a["content_encoding"] == "base64" and a["content"] == "AAH+/w=="
            a = await ask(ws, {"url": f"{base}/error", "method": "GET", "id": "e"})
            assert a["status_code"] == 500 and a["content"] == "boom" and a["id"] == "e"
            # Redirects are answers unless the route follows them.
            a = await ask(ws, {"url": f"{base}/redirect", "method": "GET"})
            assert a["status_code"] == 302 and a["headers"]["Location"] == "/api/resource"
    run(go())


def test_every_error_code_and_the_connection_stays_open(gw, http_port):
    base = f"http://127.0.0.1:{http_port}"

    async def go():
        async with connect(gw.url("/ws")) as ws:
            cases = [
                ("not json", "INVALID_FORMAT", None),
                ("[1, 2]", "INVALID_FORMAT", None),
                ({"method": "GET", "id": 1}, "MISSING_FIELD", "url"),
                ({"url": f"{base}/api/resource", "id": 2}, "MISSING_FIELD", "method"),
                ({"url": f"{base}/api/resource", "method": "TRACE", "id": 3},
                 "UNSUPPORTED_METHOD", None),
                ({"url": "http://example.com/", "method": "GET", "id": 4},
                 "TARGET_NOT_ALLOWED", None),
                ({"url": f"http://127.0.0.1:{REFUSED_PORT}/", "method": "GET", "id": 5},
                 "UPSTREAM_UNREACHABLE", None),
                ({"url": f"{base}/slow?ms=3000", "method": "GET", "timeout_ms": 300, "id": 6},
                 "UPSTREAM_TIMEOUT", None),
                ({"url": f"{base}/huge", "method": "GET", "id": 7}, "RESPONSE_TOO_LARGE", None),
            ]
            for message, code, names in cases:
                a = await ask(ws, message)
                assert a["code"] == code, (message, a)
                assert isinstance(a["error"], str) and a["error"]
                if isinstance(message, dict):
                    assert a["id"] == message["id"]
                if names:
                    assert names in a["error"]
            a = await ask(ws, {"url": f"{base}/api/resource", "method": "GET"})
            assert a["status_code"] == 200
            await ws.send(b"\x00binary")
            a = json.loads(await ws.recv())
            assert a["code"] == "INVALID_FORMAT"
    run(go())


def test_too_many_in_flight(gw, http_port):
    async def go():
        async with connect(gw.url("/small")) as ws:
            for i in (1, 2):
                await ws.send(json.dumps({"url": f"http://127.0.0.1:{http_port}/slow?ms=1500",
                                          "method": "GET", "id": i}))
            a = await ask(ws, {"url": f"http://127.0.0.1:{http_port}/text", "method": "GET",
                               "id": 3})
            assert a == {"error": a["error"], "code": "TOO_MANY_IN_FLIGHT", "id": 3}
            ids = sorted([json.loads(await ws.recv())["id"] for _ in range(2)])
            assert ids == [1, 2]
            a = await ask(ws, {"url": f"http://127.0.0.1:{http_port}/text", "method": "GET",
                               "id": 4})
            assert a["status_code"] == 200 and a["id"] == 4
    run(go())


def test_request_too_large_and_followed_redirects(gw, http_port):
    async def go():
        async with connect(gw.url("/small")) as ws:
            a = await ask(ws, {"url": f"http://127.0.0.1:{http_port}/api/resource",
                               "method": "POST", "data": {"k": "x" * 200}, "id": 1})
            assert a["code"] == "REQUEST_TOO_LARGE" and a["id"] == 1
        async with connect(gw.url("/follow")) as ws:
            a = await ask(ws, {"url": f"http://127.0.0.1:{http_port}/redirect", "method": "GET"})
            assert a["status_code"] == 200 and a["content"]["response"] == "Success"
    run(go())


def test_out_of_order_answers_matched_by_id(gw, http_port):
    async def go():
        async with connect(gw.url("/ws")) as ws:
            await ws.send(json.dumps({"url": f"http://127.0.0.1:{http_port}/slow?ms=1500",
                                      "method": "GET", "id": "slow"}))
            await ws.send(json.dumps({"url": f"http://127.0.0.1:{http_port}/slow?ms=0",
                                      "method": "GET", "id": 7}))
            first = json.loads(await ws.recv())
            second = json.loads(await ws.recv())
            assert first["id"] == 7 and first["content"] == {"slept": 0}
            assert second["id"] == "slow" and second["content"] == {"slept": 1500}
    run(go())


def test_allow_list_refuses_loopback_and_localhost_after_resolution(gw, http_port):
    async def go():
        async with connect(gw.url("/public")) as ws:
            # Allowed by the list, but 127.0.0.1 is loopback and the route does not open it.
            a = await ask(ws, {"url": f"http://127.0.0.1:{http_port}/text", "method": "GET"})
            assert a["code"] == "TARGET_NOT_ALLOWED"
            # A name that passes the list but resolves to a refused range.
            a = await ask(ws, {"url": f"http://localhost:{http_port}/text", "method": "GET"})
            assert a["code"] == "TARGET_NOT_ALLOWED"
        async with connect(gw.url("/ws")) as ws:
            # The same name on a route that allows loopback works.
            a = await ask(ws, {"url": f"http://localhost:{http_port}/text", "method": "GET"})
            assert a["status_code"] == 200
    run(go())


def test_bridge_metrics(gw, http_port):
    async def go():
        async with connect(gw.url("/ws")) as ws:
            await ask(ws, {"url": f"http://127.0.0.1:{http_port}/text", "method": "GET"})
        async with connect(gw.url("/public")) as ws:
            await ask(ws, {"url": f"http://localhost:{http_port}/text", "method": "GET"})
    run(go())
    m = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
    assert metric(m, "wsgate_bridge_requests_total", route="bridge", method="GET",
                  outcome="ok") >= 1
    assert metric(m, "wsgate_bridge_requests_total", route="bridge-public", method="GET",
                  outcome="target_not_allowed") >= 1
    assert metric(m, "wsgate_targets_refused_total", route="bridge-public",
                  reason="loopback") >= 1
    assert metric(m, "wsgate_bridge_request_seconds_count", route="bridge") >= 1


# ---------------------------------------------------------------------------------------------
# external_client

async def reject_401_server(port):
    async def process_request(path, headers):
        return (http.HTTPStatus.UNAUTHORIZED, [("Content-Type", "text/plain"), ("Content-Length", "3")], b"no\n")

    async def handler(ws, path=None):
        await ws.close()
    return await websockets.serve(handler, "127.0.0.1", port, process_request=process_request)


async def events_until(ws, predicate, limit=20):
    seen = []
    for _ in range(limit):
        e = json.loads(await asyncio.wait_for(ws.recv(), 15))
        assert TIMESTAMP.match(e["timestamp"]), e
        seen.append(e)
        if predicate(e):
            return seen
    raise AssertionError(f"no matching event in {seen}")


def status_is(s):
    return lambda e: e["type"] == "connection_status" and e["status"] == s


def test_external_echo_text_binary_headers_disconnect(gw):
    async def go():
        async with Upstream(ECHO_PORT, subprotocols=["p2"]) as up:
            async with connect(gw.url("/api/websocket/connect/client123")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"ws://127.0.0.1:{ECHO_PORT}/x",
                                          "protocols": ["p1", "p2"],
                                          "headers": {"Authorization": "Bearer t"}}))
                seen = await events_until(ws, status_is("connected"))
                assert [e["status"] for e in seen] == ["connecting", "connected"]
                await ws.send(json.dumps({"type": "send_message", "content": "Hello!"}))
                seen = await events_until(ws, lambda e: e["type"] == "message_received")
                assert seen[0]["type"] == "message_sent" and seen[0]["content"] == "Hello!"
                assert seen[-1]["content"] == "Hello!" and seen[-1]["message_type"] == "text"
                await ws.send(json.dumps({"type": "send_message", "content": "AAH+/w==",
                                          "message_type": "binary"}))
                seen = await events_until(ws, lambda e: e["type"] == "message_received")
                assert seen[-1]["content"] == "AAH+/w==" and seen[-1]["message_type"] == "binary"
                assert up.received[-1] == b"\x00\x01\xfe\xff"
                await ws.send(json.dumps({"type": "send_message", "content": "!headers"}))
                seen = await events_until(ws, lambda e: e["type"] == "message_received")
                headers = seen[-1]["content"]
                assert "authorization: Bearer t" in headers
                assert "sec-websocket-protocol: p1, p2" in headers
                # REST listing while connected.
                status, _, body = http_request(gw.port, "/api/websocket/active-connections")
                listing = json.loads(body)
                assert status == 200
                assert "client123" in listing["active_connections"]
                assert "client123" in listing["external_connections"]
                await ws.send(json.dumps({"type": "disconnect_external"}))
                await events_until(ws, status_is("disconnected"))
                await ws.send(json.dumps({"type": "send_message", "content": "late"}))
                e = json.loads(await ws.recv())
                assert e["type"] == "send_error"
            wait = time.monotonic() + 10
            while time.monotonic() < wait:
                listing = json.loads(http_request(gw.port,
                                                  "/api/websocket/active-connections")[2])
                if "client123" not in listing["active_connections"]:
                    break
                await asyncio.sleep(0.02)
            assert "client123" not in listing["active_connections"]
            assert "client123" not in listing["external_connections"]
    run(go())


SEED_003_CLIENT = '''
import asyncio
import websockets
import json

async def websocket_client():
    uri = "ws://localhost:58123/api/websocket/connect/client123"
    
    async with websockets.connect(uri) as websocket:
        # Connect to external WebSocket
        await websocket.send(json.dumps({
            "type": "connect_external",
            "url": "wss://echo.websocket.org"
        }))
        
        # Send a message
        await websocket.send(json.dumps({
            "type": "send_message",
            "content": "Hello from Python!"
        }))
        
        # Listen for responses
        async for message in websocket:
            data = json.loads(message)
            print(f"Received: {data}")

# Run the client
asyncio.run(websocket_client())
'''


def test_seed_003_python_client_example(gw):
    """Seed 003's client, verbatim except for the two addresses. It sends send_message right
    after connect_external without waiting: as with the seed's server, the message goes out once
    the connection is open."""
    script = SEED_003_CLIENT.replace("ws://localhost:58123", f"ws://localhost:{gw.port}")
    script = script.replace("wss://echo.websocket.org", f"ws://127.0.0.1:{ECHO_PORT}")

    async def go():
        async with Upstream(ECHO_PORT):
            proc = await asyncio.create_subprocess_exec(
                "/usr/bin/python3", "-u", "-c", script, stdout=asyncio.subprocess.PIPE)
            lines = []
            try:
                while True:
                    line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
                    assert line, "the client exited early"
                    lines.append(line)
                    if "'type': 'message_received'" in line:
                        break
            finally:
                proc.kill()
                await proc.wait()
            assert lines[0].startswith("Received: {'type': 'connection_status', "
                                       "'status': 'connecting'")
            kinds = [re.search(r"'type': '(\w+)'", l).group(1) for l in lines]
            assert kinds == ["connection_status", "connection_status", "message_sent",
                             "message_received"], lines
            assert "'status': 'connected'" in lines[1]
            assert "'content': 'Hello from Python!'" in lines[3]
    run(go())


async def wss_echo_server():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(CERTS, "leaf.pem"), os.path.join(CERTS, "leaf.key"))

    async def handler(ws, path=None):
        async for msg in ws:
            await ws.send(msg)
    return await websockets.serve(handler, "127.0.0.1", WSS_PORT, ssl=ctx, compression=None)


def test_external_wss_verified_against_the_routes_ca(gw):
    async def go():
        server = await wss_echo_server()
        try:
            async with connect(gw.url("/ext-tls/secure")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"wss://localhost:{WSS_PORT}/"}))
                await events_until(ws, status_is("connected"))
                await ws.send(json.dumps({"type": "send_message", "content": "over tls"}))
                seen = await events_until(ws, lambda e: e["type"] == "message_received")
                assert seen[-1]["content"] == "over tls"
                await ws.send(json.dumps({"type": "disconnect_external"}))
                await events_until(ws, status_is("disconnected"))
                # The certificate names localhost only: an IP address does not match it.
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"wss://127.0.0.1:{WSS_PORT}/"}))
                seen = await events_until(ws, lambda e: e["type"] == "connection_error")
                assert seen[-1]["code"] == "CONNECTION_FAILED", seen
            # The system store does not know the test CA.
            async with connect(gw.url("/ext-tls-system/secure")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"wss://localhost:{WSS_PORT}/"}))
                seen = await events_until(ws, lambda e: e["type"] == "connection_error")
                assert seen[-1]["code"] == "CONNECTION_FAILED", seen
        finally:
            server.close()
            await server.wait_closed()
    run(go())


def test_external_upstream_closing_reports_disconnected(gw):
    async def go():
        async with Upstream(ECHO_PORT):
            async with connect(gw.url("/api/websocket/connect/closer")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"ws://127.0.0.1:{ECHO_PORT}/"}))
                await events_until(ws, status_is("connected"))
                await ws.send(json.dumps({"type": "send_message", "content": "!close 1000 bye"}))
                await events_until(ws, status_is("disconnected"))
    run(go())


def connection_error(code):
    return lambda e: e["type"] == "connection_error"


def test_external_error_codes(gw):
    async def go():
        server = await reject_401_server(REJECT_PORT)
        try:
            async with silent_upstream(SILENT_PORT):
                async with connect(gw.url("/api/websocket/connect/errs")) as ws:
                    cases = [(f"ws://127.0.0.1:{REJECT_PORT}/", "AUTH_FAILED"),
                             (f"ws://127.0.0.1:{REFUSED_PORT}/", "REFUSED"),
                             (f"ws://127.0.0.1:{SILENT_PORT}/", "TIMEOUT"),
                             ("ws://example.com/", "NOT_ALLOWED"),
                             ("http://127.0.0.1/", "NOT_ALLOWED"),
                             ("not a url", "NOT_ALLOWED")]
                    for url, code in cases:
                        await ws.send(json.dumps({"type": "connect_external", "url": url}))
                        seen = await events_until(ws, lambda e: e["type"] == "connection_error")
                        assert seen[-1]["code"] == code, (url, seen)
                        e = json.loads(await ws.recv())
                        assert e["type"] == "connection_status" and e["status"] == "error"
                    for bad in ("nope", "{}", json.dumps({"type": "connect_external"}),
                                json.dumps({"type": "send_message"})):
                        await ws.send(bad)
                        e = json.loads(await ws.recv())
                        assert e["type"] == "error" and e["code"] == "INVALID_FORMAT", (bad, e)
                        assert TIMESTAMP.match(e["timestamp"])
        finally:
            server.close()
            await server.wait_closed()
    run(go())


def test_send_while_connecting_fails_with_the_connection(gw):
    async def go():
        async with connect(gw.url("/api/websocket/connect/hasty")) as ws:
            await ws.send(json.dumps({"type": "connect_external",
                                      "url": f"ws://127.0.0.1:{REFUSED_PORT}/"}))
            await ws.send(json.dumps({"type": "send_message", "content": "early"}))
            seen = await events_until(ws, lambda e: e["type"] == "send_error")
            assert [e["type"] for e in seen] == ["connection_status", "connection_error",
                                                 "connection_status", "send_error"], seen
            assert seen[1]["code"] == "REFUSED"
    run(go())


def test_external_allow_list_refuses_loopback_and_localhost(gw):
    async def go():
        async with Upstream(ECHO_PORT):
            async with connect(gw.url("/ext-public/someone")) as ws:
                for url in (f"ws://127.0.0.1:{ECHO_PORT}/", f"ws://localhost:{ECHO_PORT}/"):
                    await ws.send(json.dumps({"type": "connect_external", "url": url}))
                    seen = await events_until(ws, lambda e: e["type"] == "connection_error")
                    assert seen[-1]["code"] == "NOT_ALLOWED", (url, seen)
                    assert all(e.get("status") != "connected" for e in seen)
                    await ws.recv()  # connection_status error
            async with connect(gw.url("/api/websocket/connect/someone")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"ws://localhost:{ECHO_PORT}/"}))
                await events_until(ws, status_is("connected"))
    run(go())


def test_eleventh_external_connection_is_refused(gw):
    async def go():
        async with Upstream(ECHO_PORT):
            clients = []
            try:
                for i in range(11):
                    ws = await connect(gw.url("/api/websocket/connect/many"))
                    clients.append(ws)
                    await ws.send(json.dumps({"type": "connect_external",
                                              "url": f"ws://127.0.0.1:{ECHO_PORT}/"}))
                    seen = await events_until(
                        ws, lambda e: status_is("connected")(e) or e["type"] == "connection_error")
                    if i < 10:
                        assert seen[-1]["status"] == "connected", (i, seen)
                    else:
                        assert seen[-1]["code"] == "LIMIT_EXCEEDED", seen
                # Another client id is not affected.
                async with connect(gw.url("/api/websocket/connect/other")) as ws:
                    await ws.send(json.dumps({"type": "connect_external",
                                              "url": f"ws://127.0.0.1:{ECHO_PORT}/"}))
                    await events_until(ws, status_is("connected"))
                # One leaves: the slot is free again.
                await clients[0].send(json.dumps({"type": "disconnect_external"}))
                await events_until(clients[0], status_is("disconnected"))
                await clients[10].send(json.dumps({"type": "connect_external",
                                                   "url": f"ws://127.0.0.1:{ECHO_PORT}/"}))
                await events_until(clients[10], status_is("connected"))
            finally:
                for ws in clients:
                    await ws.close()
    run(go())


def test_message_over_rate_closes_with_1008(gw):
    async def go():
        # The seed's default: 100 messages per minute; the 101st closes the connection.
        async with connect(gw.url("/api/websocket/connect/chatty")) as ws:
            for i in range(100):
                await ws.send(json.dumps({"type": "send_message", "content": str(i)}))
                e = json.loads(await ws.recv())
                assert e["type"] == "send_error"
            await ws.send(json.dumps({"type": "send_message", "content": "one too many"}))
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008
        # A configured rate.
        async with connect(gw.url("/ext-fast/chatty")) as ws:
            for i in range(5):
                await ws.send("bad")
                await ws.recv()
            await ws.send("bad")
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1008
    run(go())


def test_rest_test_connection(gw):
    def post(body):
        status, _, data = http_request(gw.port, "/api/websocket/test-connection", method="POST",
                                       headers={"Content-Type": "application/json"},
                                       body=json.dumps(body) if not isinstance(body, str)
                                       else body, timeout=15)
        return status, json.loads(data)

    async def go():
        async with Upstream(ECHO_PORT):
            loop = asyncio.get_running_loop()
            url = f"ws://127.0.0.1:{ECHO_PORT}/"
            status, a = await loop.run_in_executor(None, post, {"url": url, "protocols": [],
                                                                 "headers": {}})
            assert status == 200
            assert a == {"status": "success", "message": a["message"], "url": url}
            status, a = await loop.run_in_executor(
                None, post, {"url": f"ws://127.0.0.1:{REFUSED_PORT}/"})
            assert status == 200 and a["status"] == "error" and a["code"] == "REFUSED"
            status, a = await loop.run_in_executor(None, post, {"url": "ws://example.com/"})
            assert a["status"] == "error" and a["code"] == "NOT_ALLOWED"
            status, a = await loop.run_in_executor(None, post, "not json")
            assert status == 400 and a["status"] == "error"
            # While a probe waits on a silent server, the worker keeps serving.
            async with silent_upstream(SILENT_PORT):
                fut = loop.run_in_executor(None, post, {"url": f"ws://127.0.0.1:{SILENT_PORT}/"})
                for _ in range(5):
                    assert http_request(gw.port, "/health")[0] == 200
                status, a = await fut
                assert a["status"] == "error" and a["code"] == "TIMEOUT"
    run(go())
    assert http_request(gw.port, "/api/websocket/test-connection")[0] == 405


def test_websocket_debug_logs_events(gw):
    async def go():
        async with connect(gw.url("/api/websocket/connect/debugged")) as ws:
            await ws.send("nope")
            await ws.recv()
    run(go())
    assert "debugged" in gw.output()


def test_external_metrics(gw):
    async def go():
        async with Upstream(ECHO_PORT):
            async with connect(gw.url("/api/websocket/connect/metered")) as ws:
                await ws.send(json.dumps({"type": "connect_external",
                                          "url": f"ws://127.0.0.1:{ECHO_PORT}/"}))
                await events_until(ws, status_is("connected"))
                m = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
                assert metric(m, "wsgate_external_connections_active", route="ext") >= 1
    run(go())
