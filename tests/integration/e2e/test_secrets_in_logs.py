"""No log line carries a secret: one wsgate run with WEBSOCKET_DEBUG=true and --log-level trace
goes through every path that handles one (the admin token on gRPC and on the admin API, a
refused token, a JWT in the Authorization header, in the query and in the subprotocol, the
headers of connect_external, the request and answer headers of the HTTP bridge, URLs with
token= query parameters), then wsgate's whole output is searched for each secret value. None
may appear, and the redaction marker must appear where a secret was logged (the debug lines of
connect_external and of the bridge), so that the search is not vacuous."""

import asyncio
import base64
import hashlib
import hmac
import http.server
import json
import threading
import time

import grpc
import pytest

from wsgate_harness import Gateway, Upstream, connect, free_port, handshake_status, http_request, stubs

S = stubs()

# Every secret is distinctive, so that finding any part of it in the log means it leaked.
ADMIN = "admintok-S3CR3T-a1a1a1a1a1a1"
WRONG = "wrongtok-S3CR3T-b2b2b2b2b2b2"
JWT_SECRET = "jwtkey-S3CR3T-c3c3c3c3c3c3c3c3"
EXT_AUTH = "extauth-S3CR3T-d4d4d4d4"
EXT_COOKIE = "extcookie-S3CR3T-e5e5e5e5"
EXT_API_TOKEN = "extapitoken-S3CR3T-f6f6f6"
EXT_QUERY = "extquery-S3CR3T-g7g7g7g7"
BRIDGE_AUTH = "bridgeauth-S3CR3T-h8h8h8h8"
BRIDGE_COOKIE = "bridgecookie-S3CR3T-i9i9i9"
BRIDGE_QUERY = "bridgequery-S3CR3T-j0j0j0"
UPSTREAM_SET_COOKIE = "upstreamsetcookie-S3CR3T-k1k1"
PROXY_AUTH = "proxyauth-S3CR3T-l2l2l2l2"
PROXY_COOKIE = "proxycookie-S3CR3T-m3m3m3"
ECHO_QUERY = "echoquery-S3CR3T-n4n4n4n4"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET):
    signing_input = (b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


class Backend(http.server.BaseHTTPRequestHandler):
    """The bridge's upstream: answers every request with a Set-Cookie and the request's headers."""

    def do_GET(self):
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"session={UPSTREAM_SET_COOKIE}; HttpOnly")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def config(upstream_port):
    return f"""
routes:
  - name: echo
    path: /echo
    echo: {{}}
  - name: proxy
    path: /proxy/{{client_id}}
    websocket:
      upstreams: ["ws://127.0.0.1:{upstream_port}/up"]
      forward_headers: [authorization, cookie]
  - name: jwt
    path: /jwt/{{session_id}}
    pubsub:
      auth: AUTH_JWT_HS256
      jwt_secret_env: WSGATE_TEST_JWT_SECRET
      token_query_param: access_token
      token_subprotocol: true
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
"""


async def events_until(ws, pred):
    seen = []
    while True:
        e = json.loads(await asyncio.wait_for(ws.recv(), 15))
        seen.append(e)
        if pred(e):
            return seen


def grpc_calls(g):
    ch = g.channel()
    routes = S.route_grpc.RouteServiceStub(ch)
    md = [("authorization", f"Bearer {ADMIN}")]
    assert routes.ListRoutes(S.route.ListRoutesRequest(), metadata=md, timeout=10).routes
    # A mutation: audited, with the caller's token id and never the token.
    route = S.config.Route(name="extra", path="/extra", echo=S.config.EchoRoute())
    routes.PutRoute(S.route.PutRouteRequest(route=route), metadata=md, timeout=10)
    with pytest.raises(grpc.RpcError) as e:
        routes.ListRoutes(S.route.ListRoutesRequest(),
                          metadata=[("authorization", f"Bearer {WRONG}")], timeout=10)
    assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    ch.close()


def admin_api_calls(g):
    for token, want in ((ADMIN, 200), (WRONG, 401)):
        st, _, body = http_request(g.admin_port, "/wsgate.v1.RouteService/DeleteRoute", "POST",
                                   headers={"Content-Type": "application/json",
                                            "Authorization": f"Bearer {token}"},
                                   body=json.dumps({"name": "extra"}).encode())
        assert st == want, body


async def data_plane(g, upstream_port, backend_port):
    good = make_jwt({"session_id": "s1", "exp": int(time.time()) + 300})
    forged = make_jwt({"session_id": "s1"}, secret="not-the-secret")
    async with Upstream(upstream_port) as up:
        # The JWT route: the header, the query parameter, the subprotocol; and refusals.
        async with connect(g.url("/jwt/s1"), extra_headers={"Authorization": f"Bearer {good}"}):
            pass
        async with connect(g.url(f"/jwt/s1?access_token={good}")):
            pass
        async with connect(g.url("/jwt/s1"), subprotocols=["wsgate.bearer", f"wsgate.bearer.{good}"]):
            pass
        assert await handshake_status(g.url("/jwt/s1"),
                                      extra_headers={"Authorization": f"Bearer {forged}"}) == 401
        assert await handshake_status(g.url(f"/jwt/s1?access_token={forged}")) == 401
        # The proxy forwards Authorization and Cookie upstream.
        async with connect(g.url("/proxy/c1"), extra_headers={
                "Authorization": f"Bearer {PROXY_AUTH}", "Cookie": f"sid={PROXY_COOKIE}"}) as ws:
            await ws.send("!headers")
            assert PROXY_AUTH in await asyncio.wait_for(ws.recv(), 15)
        # A token in the query of an ordinary route.
        async with connect(g.url(f"/echo?token={ECHO_QUERY}")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        # connect_external with credential headers and a token in the URL.
        async with connect(g.url("/ext/c2")) as ws:
            await ws.send(json.dumps({
                "type": "connect_external",
                "url": f"ws://127.0.0.1:{upstream_port}/x?room=1&token={EXT_QUERY}",
                "headers": {"Authorization": f"Bearer {EXT_AUTH}", "Cookie": f"sid={EXT_COOKIE}",
                            "X-Api-Token": EXT_API_TOKEN}}))
            await events_until(ws, lambda e: e.get("status") == "connected")
            await ws.send(json.dumps({"type": "send_message", "content": "!headers"}))
            seen = await events_until(ws, lambda e: e["type"] == "message_received")
            assert EXT_AUTH in seen[-1]["content"]
            await ws.send(json.dumps({"type": "disconnect_external"}))
            await events_until(ws, lambda e: e.get("status") == "disconnected")
        # The bridge: credential headers out, Set-Cookie back, a token in the URL.
        async with connect(g.url("/bridge")) as ws:
            await ws.send(json.dumps({
                "url": f"http://127.0.0.1:{backend_port}/api?access_token={BRIDGE_QUERY}",
                "method": "GET", "id": "r1",
                "headers": {"Authorization": f"Bearer {BRIDGE_AUTH}",
                            "Cookie": f"sid={BRIDGE_COOKIE}"}}))
            answer = json.loads(await asyncio.wait_for(ws.recv(), 15))
            assert answer.get("status_code") == 200, answer
            assert BRIDGE_AUTH in json.dumps(answer["content"])
        assert up.received or up.connections
    return good, forged


def test_no_secret_reaches_the_log(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"admin {ADMIN}\n")
    upstream_port = free_port()
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    env = {"WEBSOCKET_DEBUG": "true", "WSGATE_TEST_JWT_SECRET": JWT_SECRET,
           "WSGATE_ADMIN_TOKEN_FILE": str(tokens)}
    try:
        with Gateway(config(upstream_port), env=env, args=["--log-level", "trace"]) as g:
            grpc_calls(g)
            admin_api_calls(g)
            good, forged = asyncio.run(asyncio.wait_for(
                data_plane(g, upstream_port, backend.server_address[1]), 120))
            g.stop()
            out = g.output()
    finally:
        backend.shutdown()

    secrets = {
        "admin token": ADMIN, "refused token": WRONG, "JWT secret": JWT_SECRET,
        "connect_external Authorization": EXT_AUTH, "connect_external Cookie": EXT_COOKIE,
        "connect_external X-Api-Token": EXT_API_TOKEN, "connect_external URL token": EXT_QUERY,
        "bridge Authorization": BRIDGE_AUTH, "bridge Cookie": BRIDGE_COOKIE,
        "bridge URL token": BRIDGE_QUERY, "upstream Set-Cookie": UPSTREAM_SET_COOKIE,
        "proxied Authorization": PROXY_AUTH, "proxied Cookie": PROXY_COOKIE,
        "echo URL token": ECHO_QUERY, "JWT": good, "forged JWT": forged,
        "JWT signature": good.rsplit(".", 1)[1], "forged JWT signature": forged.rsplit(".", 1)[1],
    }
    leaked = {what: [l for l in out.splitlines() if value in l][:3]
              for what, value in secrets.items() if value in out}
    assert not leaked, f"secrets in wsgate's output: {json.dumps(leaked, indent=1)}"
    # Not vacuous: the debug lines that carry the secrets were written, redacted.
    lines = out.splitlines()
    # (The client's own JSON, as Python's json.dumps spaces it.)
    ext = [l for l in lines
           if "external_client ext: from client c2" in l and '"type": "connect_external"' in l]
    assert ext and all('"Authorization": "<redacted>"' in l and '"Cookie": "<redacted>"' in l
                       and '"X-Api-Token": "<redacted>"' in l and "token=<redacted>" in l
                       for l in ext), "\n".join(ext) or out[-3000:]
    bridge = [l for l in lines if "http_bridge bridge: answer" in l]
    assert bridge and any("<redacted>" in l for l in bridge), "\n".join(bridge) or out[-3000:]
    audit = [l for l in lines if "audit" in l and "PutRoute" in l]
    assert audit and '"token_id":' in audit[0], out[-3000:]
