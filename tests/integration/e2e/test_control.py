"""The control plane end to end: gRPC route changes, reflection, health, persistence, shutdown."""

import asyncio
import json
import os
import signal
import tempfile

import grpc
import pytest
import websockets

from wsgate_harness import (Gateway, Upstream, connect, free_port, handshake_status, http_request,
                            run_wsgate, stubs, wait_for)

ECHO_ONLY = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""


def route_stub(gw):
    return stubs().route_grpc.RouteServiceStub(gw.channel())


def echo_route(name, path):
    s = stubs()
    return s.config.Route(name=name, path=path, echo=s.config.EchoRoute())


async def roundtrip(url, text="ping"):
    async with connect(url) as ws:
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), 5)


def status_of(url):
    return asyncio.run(handshake_status(url))


def test_route_added_over_grpc_serves_next_connection_and_delete_404s():
    with Gateway(ECHO_ONLY) as gw:
        rs = route_stub(gw)
        assert status_of(gw.url("/added")) == 404
        # An open connection on an existing route keeps working across the change.
        async def keep_open():
            async with connect(gw.url("/echo")) as ws:
                resp = rs.PutRoute(stubs().route.PutRouteRequest(route=echo_route("added", "/added")))
                assert resp.created and resp.route.version == resp.config_version
                assert await roundtrip(gw.url("/added"), "new") == "new"
                await ws.send("still here")
                assert await ws.recv() == "still here"
        asyncio.run(keep_open())
        names = [r.name for r in rs.ListRoutes(stubs().route.ListRoutesRequest()).routes]
        assert sorted(names) == ["added", "echo"]
        assert rs.GetRoute(stubs().route.GetRouteRequest(name="added")).path == "/added"
        rs.DeleteRoute(stubs().route.DeleteRouteRequest(name="added"))
        wait_for(lambda: status_of(gw.url("/added")) == 404, 5, what="deleted route 404")
        with pytest.raises(grpc.RpcError) as e:
            rs.GetRoute(stubs().route.GetRouteRequest(name="added"))
        assert e.value.code() == grpc.StatusCode.NOT_FOUND


def test_put_route_validation_names_the_field():
    s = stubs()
    with Gateway(ECHO_ONLY) as gw:
        rs = route_stub(gw)
        cases = [
            (s.config.Route(name="bad", path="no-slash", echo=s.config.EchoRoute()), "route.path"),
            (s.config.Route(name="bad", path="/bad", websocket=s.config.WebSocketRoute(
                upstreams=["http://127.0.0.1:1/"])), "route.websocket.upstreams[0]"),
            (s.config.Route(name="bad", path="/bad"), "route.kind"),
            (s.config.Route(name="bad", path="/bad", echo=s.config.EchoRoute(),
                            limits=s.config.Limits(max_message_bytes=1 << 40)),
             "route.limits.max_message_bytes"),
            (s.config.Route(name="dup", path="/echo", echo=s.config.EchoRoute()), "route.path"),
            (s.config.Route(name="", path="/x", echo=s.config.EchoRoute()), "route.name"),
            (s.config.Route(name="bad", path="/bad", http_bridge=s.config.HttpBridgeRoute(
                allowed_targets=["https://127.0.0.1:*"],
                tls=s.config.OutboundTls(verify=s.config.OutboundTls.VERIFY_CA_FILE,
                                         ca_file="/nonexistent/ca.pem"))),
             "route.http_bridge.tls.ca_file: '/nonexistent/ca.pem'"),
        ]
        for route, field in cases:
            with pytest.raises(grpc.RpcError) as e:
                rs.PutRoute(s.route.PutRouteRequest(route=route))
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, route
            assert field in e.value.details(), (field, e.value.details())
        # Nothing was applied and the gateway still serves.
        assert [r.name for r in rs.ListRoutes(s.route.ListRoutesRequest()).routes] == ["echo"]
        assert asyncio.run(roundtrip(gw.url("/echo"))) == "ping"


def test_put_route_expected_version():
    s = stubs()
    with Gateway(ECHO_ONLY) as gw:
        rs = route_stub(gw)
        created = rs.PutRoute(s.route.PutRouteRequest(route=echo_route("v", "/v"), expected_version=0))
        with pytest.raises(grpc.RpcError) as e:  # already exists
            rs.PutRoute(s.route.PutRouteRequest(route=echo_route("v", "/v"), expected_version=0))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        with pytest.raises(grpc.RpcError) as e:
            rs.PutRoute(s.route.PutRouteRequest(route=echo_route("v", "/v2"),
                                                expected_version=created.route.version + 5))
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        updated = rs.PutRoute(s.route.PutRouteRequest(route=echo_route("v", "/v2"),
                                                      expected_version=created.route.version))
        assert not updated.created and updated.route.version > created.route.version
        assert status_of(gw.url("/v2")) == 101


def test_inventory_counts_connections():
    s = stubs()
    with Gateway(ECHO_ONLY) as gw:
        inv = s.inventory_grpc.InventoryServiceStub(gw.channel())

        async def main():
            async with connect(gw.url("/echo")) as a, connect(gw.url("/echo")) as b:
                await a.send("1"); await a.recv(); await b.send("2"); await b.recv()
                got = inv.GetInventory(s.inventory.GetInventoryRequest())
                routes = {r.route: r for r in got.routes}
                assert routes["echo"].active_connections == 2
                assert got.active_connections == 2
                assert got.config_version >= 1
        asyncio.run(main())
        wait_for(lambda: inv.GetInventory(s.inventory.GetInventoryRequest()).active_connections == 0,
                 5, what="connections gone from inventory")


def _reflection_list_services(channel):
    """grpc.reflection.v1alpha list_services, encoded by hand (no reflection client in Debian)."""
    call = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
                                 request_serializer=lambda b: b, response_deserializer=lambda b: b)
    # ServerReflectionRequest{list_services = ""}: field 7, wire type 2, length 0.
    responses = list(call(iter([b"\x3a\x00"]), timeout=5))
    assert len(responses) == 1
    return _strings_in(responses[0])


def _strings_in(buf):
    """Every length-delimited field, recursively, that decodes as printable text."""
    out, i = [], 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wt = key & 7
        if wt == 0:
            _, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            chunk = buf[i:i + n]
            i += n
            try:
                out.extend(_strings_in(chunk))
            except Exception:
                pass
            if chunk and all(32 <= c < 127 for c in chunk):
                out.append(chunk.decode())
        else:
            raise ValueError("unexpected wire type")
    return out


def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return value, i


def test_reflection_and_health():
    with Gateway(ECHO_ONLY) as gw:
        services = _reflection_list_services(gw.channel())
        assert "wsgate.v1.RouteService" in services
        assert "wsgate.v1.InventoryService" in services
        health = gw.channel().unary_unary("/grpc.health.v1.Health/Check",
                                          request_serializer=lambda b: b,
                                          response_deserializer=lambda b: b)
        # HealthCheckResponse{status = SERVING(1)}: field 1 varint 1.
        assert health(b"", timeout=5) == b"\x08\x01"


def test_routes_survive_restart_and_corrupt_state_refuses_to_start():
    with tempfile.TemporaryDirectory() as state:
        with Gateway(ECHO_ONLY, state_dir=state) as gw:
            route_stub(gw).PutRoute(stubs().route.PutRouteRequest(route=echo_route("kept", "/kept")))
        assert os.path.exists(os.path.join(state, "routes.json"))
        assert not [f for f in os.listdir(state) if f != "routes.json"], os.listdir(state)
        with Gateway(ECHO_ONLY, state_dir=state) as gw:
            assert asyncio.run(roundtrip(gw.url("/kept"), "back")) == "back"
        path = os.path.join(state, "routes.json")
        with open(path, "w") as f:
            f.write('{"routes": [ {"name": "x", ')  # truncated JSON
        before = open(path, "rb").read()
        gw = Gateway(ECHO_ONLY, state_dir=state)
        gw.start(wait=False)
        try:
            code = gw.wait_exit(15)
            assert code != 0
            assert "routes.json" in gw.output()
        finally:
            gw.stop()
        assert open(path, "rb").read() == before


def test_sigterm_closes_clients_with_1001_and_exits_0():
    with Gateway(ECHO_ONLY) as gw:
        async def main():
            async with connect(gw.url("/echo")) as ws:
                await ws.send("x")
                await ws.recv()
                gw.signal(signal.SIGTERM)
                wait_for(lambda: http_request(gw.admin_port, "/ready")[0] == 503, 5,
                         what="/ready 503 during shutdown")
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 15)
                assert ws.close_code == 1001
        asyncio.run(main())
        assert gw.wait_exit(20) == 0


def test_check_config_and_invalid_config_errors():
    with tempfile.TemporaryDirectory() as d:
        good = os.path.join(d, "good.yaml")
        with open(good, "w") as f:
            f.write(ECHO_ONLY)
        code, out = run_wsgate(["--check-config", good])
        assert code == 0, out
        cases = {
            "unknown.yaml": ("routes:\n  - name: e\n    path: /e\n    echo: {}\n    limitz: {}\n",
                             "limitz"),
            "kind.yaml": ("routes:\n  - name: e\n    path: /e\n    room: {}\n",
                          "routes[0].room: the path '/e' has no {client_id}"),
            "dup.yaml": ("routes:\n  - {name: a, path: /a, echo: {}}\n  - {name: a, path: /b, echo: {}}\n",
                         "routes[1].name"),
            "syntax.yaml": ("routes: [\n", "line"),
            "type.yaml": ("routes:\n  - name: e\n    path: /e\n    echo: {}\n    limits: {max_message_bytes: lots}\n",
                          "max_message_bytes"),
            # Server settings the data plane would refuse at start, named by their field.
            "listen.yaml": ("server: {listen_address: localhost}\n" + ECHO_ONLY,
                            "server.listen_address: 'localhost' is not an IP address"),
            "redis.yaml": ("server: {redis_url: 'http://x'}\n" + ECHO_ONLY,
                           "server.redis_url: must start with redis://"),
            # A file named in config is read by the check, not by the first connection.
            "ca.yaml": ("routes:\n  - name: b\n    path: /b\n    http_bridge:\n"
                        "      allowed_targets: ['https://127.0.0.1:*']\n"
                        "      tls: {verify: VERIFY_CA_FILE, ca_file: /nonexistent/ca.pem}\n",
                        "routes[0].http_bridge.tls.ca_file: '/nonexistent/ca.pem'"),
        }
        for name, (text, needle) in cases.items():
            p = os.path.join(d, name)
            with open(p, "w") as f:
                f.write(text)
            code, out = run_wsgate(["--check-config", p])
            assert code != 0, (name, out)
            assert needle in out, (name, out)
            # Starting with it fails the same way, before listening.
            code, out = run_wsgate(["--config", p, "--port", "0", "--admin-port", "0", "--grpc-port", "0"])
            assert code != 0 and needle in out, (name, out)


def test_json_logs():
    with Gateway(ECHO_ONLY, args=["--log-format", "json"]) as gw:
        gw.stop()
        output = gw.output()
    lines = [l for l in output.splitlines() if l.strip()]
    assert lines
    for line in lines:
        obj = json.loads(line)
        assert "msg" in obj and "level" in obj


def test_shipped_examples_are_valid():
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples")
    files = [f for f in os.listdir(examples) if f.endswith(".yaml")]
    assert files
    for f in files:
        code, out = run_wsgate(["--check-config", os.path.join(examples, f)])
        assert code == 0, (f, out)
