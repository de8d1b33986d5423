"""The Connect protocol on the admin port, with an independent client (http.client from Python's
standard library, protobuf messages from the project's protos compiled by the system protoc).

Every wsgate.v1 method over JSON and binary, each error code the API produces with its HTTP
status, server streaming (enveloped messages and the end-of-stream message, JSON and binary),
protocol-level refusals (method, path, content type, encoding, headers, bad and oversized bodies)
and their metric, and bearer tokens with roles on both transports with the audit log."""

import asyncio
import http.client
import json
import os
import signal
import socket
import struct

import grpc
import pytest
import websockets

from wsgate_harness import Gateway, connect, http_request, metric, parse_metrics, stubs, wait_for

S = stubs()

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: feed
    path: /feed/{session_id}
    pubsub: {}
"""

ADMIN = "admin-token-aaaaaaaaaaaaaaaa"
VIEWER = "viewer-token-vvvvvvvvvvvvvvvv"

SERVICES = {
    "wsgate.v1.RouteService": S.route,
    "wsgate.v1.LimitService": S.limit,
    "wsgate.v1.SessionService": S.session,
    "wsgate.v1.InventoryService": S.inventory,
}


def all_methods():
    """(service, method, input class, output class, server_streaming) of every wsgate.v1 RPC,
    from the descriptors: a new RPC is covered by the role tests with no change here."""
    out = []
    for service, module in SERVICES.items():
        sd = module.DESCRIPTOR.services_by_name[service.split(".")[-1]]
        for m in sd.methods:
            inp = getattr(module, m.input_type.name, None) or getattr(S.config, m.input_type.name)
            outp = getattr(module, m.output_type.name, None) or getattr(S.config, m.output_type.name)
            out.append((service, m.name, inp, outp, m.server_streaming))
    return out


def is_mutation(name):
    return name.startswith(("Put", "Delete", "Update", "Close", "Send", "Publish"))


def call(port, path, body=b"", ctype="application/json", headers=None, method="POST"):
    """(status, headers, body) of one Connect request."""
    h = {"Content-Type": ctype}
    h.update(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
    return http_request(port, path, method=method, headers=h, body=body, timeout=10)


def unary(port, service, method, req=None, token=None):
    """A JSON unary call; returns (status, decoded JSON)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, body = call(port, f"/{service}/{method}", req if req is not None else {},
                           headers=headers)
    return status, json.loads(body)


def unary_proto(port, service, method, msg, out_cls, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    status, h, body = call(port, f"/{service}/{method}", msg.SerializeToString(),
                           ctype="application/proto", headers=headers)
    if status != 200:
        return status, json.loads(body)
    assert h["content-type"] == "application/proto"
    out = out_cls()
    out.ParseFromString(body)
    return status, out


def envelope(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


class Stream:
    """A Connect server stream read incrementally from a raw HTTP/1.1 chunked response."""

    def __init__(self, port, service, method, payload, ctype="application/connect+json",
                 token=None):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        headers = {"Content-Type": ctype, "Connect-Protocol-Version": "1"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.conn.request("POST", f"/{service}/{method}", body=envelope(payload), headers=headers)
        self.resp = self.conn.getresponse()

    def next(self):
        """(flags, payload bytes) of the next envelope."""
        head = self.resp.read(5)
        assert len(head) == 5, f"stream ended without an end-of-stream message: {head!r}"
        flags, n = struct.unpack(">BI", head)
        return flags, self.resp.read(n)

    def close(self):
        self.conn.close()


def next_event(stream, kind):
    """The next data envelope as a SessionEvent of type `kind` (others skipped)."""
    while True:
        flags, payload = stream.next()
        assert flags == 0, (flags, payload)
        ev = json.loads(payload)
        if ev.get("type") == kind:
            return ev


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG, workers=2) as g:
        yield g


def test_open_mode_says_so_once_at_start(gw):
    lines = [l for l in gw.output().splitlines() if "no --admin-token-file" in l]
    assert len(lines) == 1, gw.output()


def test_curl_example_and_every_read_over_json(gw):
    p = gw.admin_port
    status, inv = unary(p, "wsgate.v1.InventoryService", "GetInventory")
    assert status == 200, inv
    assert inv["routes"] and {r["route"] for r in inv["routes"]} >= {"echo", "feed"}
    status, routes = unary(p, "wsgate.v1.RouteService", "ListRoutes")
    assert status == 200
    assert {r["name"] for r in routes["routes"]} == {"echo", "feed"}
    # proto3 JSON: uint64 as a string, lowerCamelCase names.
    assert isinstance(routes["configVersion"], str)
    status, route = unary(p, "wsgate.v1.RouteService", "GetRoute", {"name": "feed"})
    assert status == 200 and route["path"] == "/feed/{session_id}"
    status, limits = unary(p, "wsgate.v1.LimitService", "GetLimits")
    assert status == 200 and "routes" in limits
    status, sessions = unary(p, "wsgate.v1.SessionService", "ListSessions", {"pageSize": 10})
    assert status == 200


def test_binary_proto_for_every_kind_of_answer(gw):
    p = gw.admin_port
    status, routes = unary_proto(p, "wsgate.v1.RouteService", "ListRoutes",
                                 S.route.ListRoutesRequest(), S.route.ListRoutesResponse)
    assert status == 200 and {r.name for r in routes.routes} == {"echo", "feed"}
    status, inv = unary_proto(p, "wsgate.v1.InventoryService", "GetInventory",
                              S.inventory.GetInventoryRequest(), S.inventory.Inventory)
    assert status == 200 and inv.workers == 2 and inv.routes
    status, lim = unary_proto(p, "wsgate.v1.LimitService", "GetLimits",
                              S.limit.GetLimitsRequest(route="echo"), S.limit.GetLimitsResponse)
    assert status == 200


def test_mutations_and_sessions_over_connect(gw):
    p = gw.admin_port

    async def scenario():
        # PutRoute creates a route the data plane serves at once.
        status, put = unary(p, "wsgate.v1.RouteService", "PutRoute",
                            {"route": {"name": "chat", "path": "/chat", "echo": {}}})
        assert status == 200 and put["created"] is True, put
        async with connect(gw.url("/chat")) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            sid = None

            def find():
                nonlocal sid
                st, ls = unary(p, "wsgate.v1.SessionService", "ListSessions", {"route": "chat"})
                if st == 200 and ls.get("sessions"):
                    sid = ls["sessions"][0]["id"]
                return sid
            wait_for(find, 5, what="the session in ListSessions")
            st, one = unary(p, "wsgate.v1.SessionService", "GetSession", {"id": sid})
            assert st == 200 and one["route"] == "chat"
            # Binary: SendToSession with a proto body.
            st, _ = unary_proto(p, "wsgate.v1.SessionService", "SendToSession",
                                S.session.SendToSessionRequest(id=sid, text="from connect"),
                                S.session.SendToSessionResponse)
            assert st == 200
            assert await asyncio.wait_for(ws.recv(), 5) == "from connect"
            st, _ = unary(p, "wsgate.v1.SessionService", "CloseSession",
                          {"id": sid, "code": 4001, "reason": "bye from connect"})
            assert st == 200
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == 4001 and ws.close_reason == "bye from connect"
        st, lim = unary(p, "wsgate.v1.LimitService", "UpdateLimits",
                        {"route": "chat", "limits": {"maxMessageBytes": "100"},
                         "updateMask": "maxMessageBytes"})
        assert st == 200 and lim["limits"]["maxMessageBytes"] == "100", lim
        st, pub = unary(p, "wsgate.v1.SessionService", "Publish",
                        {"channel": "session:x:down", "text": "hello"})
        assert st == 200 and pub["bus"], pub
        st, d = unary(p, "wsgate.v1.RouteService", "DeleteRoute", {"name": "chat"})
        assert st == 200 and "configVersion" in d
    asyncio.run(scenario())


def test_error_codes_carry_their_http_status_and_name_the_field(gw):
    p = gw.admin_port
    st, e = unary(p, "wsgate.v1.RouteService", "PutRoute",
                  {"route": {"name": "bad", "path": "nope", "echo": {}}})
    assert (st, e["code"]) == (400, "invalid_argument"), e
    assert "route.path" in e["message"]
    st, e = unary(p, "wsgate.v1.RouteService", "GetRoute", {"name": "absent"})
    assert (st, e["code"]) == (404, "not_found"), e
    st, e = unary(p, "wsgate.v1.RouteService", "PutRoute",
                  {"route": {"name": "echo", "path": "/echo", "echo": {}}, "expectedVersion": "0"})
    assert (st, e["code"]) == (400, "failed_precondition"), e
    st, e = unary(p, "wsgate.v1.SessionService", "ListSessions", {"pageSize": 5000})
    assert (st, e["code"]) == (400, "invalid_argument") and "page_size" in e["message"]
    st, h, body = call(p, "/wsgate.v1.InventoryService/GetInventory", {},
                       headers={"Connect-Timeout-Ms": "0"})
    assert (st, json.loads(body)["code"]) == (504, "deadline_exceeded"), body


def test_protocol_refusals_are_connect_errors_and_counted(gw):
    p = gw.admin_port
    before = parse_metrics(http_request(p, "/metrics")[2].decode())
    cases = [
        # (request kwargs, HTTP status, code, reason label)
        (dict(path="/wsgate.v1.RouteService/Nope"), 404, "unimplemented", "unknown_method"),
        (dict(path="/wsgate.v1.NoService/ListRoutes"), 404, "unimplemented", "unknown_method"),
        (dict(path="/grpc.health.v1.Health/Check"), 404, "unimplemented", "unknown_method"),
        (dict(ctype="text/plain"), 415, "invalid_argument", "content_type"),
        (dict(ctype="application/connect+json"), 415, "invalid_argument", "content_type"),
        (dict(method="GET"), 405, "unimplemented", "method_not_allowed"),
        (dict(body=b"{not json"), 400, "invalid_argument", "bad_body"),
        (dict(body=b'{"nope": 1}'), 400, "invalid_argument", "bad_body"),
        (dict(body=b"\xff\xff\xff", ctype="application/proto"), 400, "invalid_argument",
         "bad_body"),
        (dict(headers={"Content-Encoding": "gzip"}), 501, "unimplemented", "encoding"),
        (dict(headers={"Connect-Timeout-Ms": "soon"}), 400, "invalid_argument", "bad_header"),
        (dict(headers={"Connect-Protocol-Version": "2"}), 400, "invalid_argument", "bad_header"),
    ]
    counts = {}
    for kw, status, code, reason in cases:
        path = kw.pop("path", "/wsgate.v1.RouteService/ListRoutes")
        st, h, body = call(p, path, kw.pop("body", b"{}"), **kw)
        assert st == status, (path, kw, st, body)
        assert h["content-type"] == "application/json"
        err = json.loads(body)
        assert err["code"] == code and err["message"], (path, kw, err)
        counts[reason] = counts.get(reason, 0) + 1
    assert call(p, "/wsgate.v1.RouteService/ListRoutes", method="GET")[1]["allow"] == "POST"
    counts["method_not_allowed"] += 1
    after = parse_metrics(http_request(p, "/metrics")[2].decode())
    for reason, n in counts.items():
        assert (metric(after, "wsgate_connect_rejected_total", reason=reason)
                - metric(before, "wsgate_connect_rejected_total", reason=reason)) == n, reason
    assert (metric(after, "wsgate_connect_requests_total", code="unimplemented")
            - metric(before, "wsgate_connect_requests_total", code="unimplemented")) >= 5
    # The server still answers.
    assert unary(p, "wsgate.v1.RouteService", "ListRoutes")[0] == 200


def test_oversized_bodies_are_refused_and_the_connection_closed(gw):
    p = gw.admin_port
    big = b'{"name":"' + b"x" * (2 * 1024 * 1024) + b'"}'
    st, _, body = call(p, "/wsgate.v1.RouteService/GetRoute", big)
    assert st == 429 and json.loads(body)["code"] == "resource_exhausted", body
    assert "limit" in json.loads(body)["message"]
    # Chunked, so that the size is only known while reading.
    s = socket.create_connection(("127.0.0.1", p), timeout=10)
    s.sendall(b"POST /wsgate.v1.RouteService/GetRoute HTTP/1.1\r\nHost: x\r\n"
              b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunk = b"y" * 65536
    try:
        for _ in range(40):
            s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
    except OSError:
        pass  # the server may close before everything is sent
    data = b""
    while True:
        try:
            got = s.recv(65536)
        except OSError:
            break
        if not got:
            break
        data += got
    s.close()
    assert data.startswith(b"HTTP/1.1 429"), data[:200]
    assert b'"resource_exhausted"' in data
    assert unary(p, "wsgate.v1.RouteService", "ListRoutes")[0] == 200


def test_watch_sessions_streams_json_events(gw):
    stream = Stream(gw.admin_port, "wsgate.v1.SessionService", "WatchSessions",
                    json.dumps({"route": "echo"}).encode())
    assert stream.resp.status == 200
    assert stream.resp.getheader("content-type") == "application/connect+json"

    async def scenario():
        async with connect(gw.url("/echo")):
            pass
    asyncio.run(scenario())
    opened = next_event(stream, "TYPE_OPENED")
    assert opened["route"] == "echo" and opened["sessionId"]
    closed = next_event(stream, "TYPE_CLOSED")
    assert closed["sessionId"] == opened["sessionId"]
    stream.close()


def test_watch_sessions_streams_binary_events(gw):
    stream = Stream(gw.admin_port, "wsgate.v1.SessionService", "WatchSessions",
                    S.session.WatchSessionsRequest(route="echo").SerializeToString(),
                    ctype="application/connect+proto")
    assert stream.resp.getheader("content-type") == "application/connect+proto"

    async def scenario():
        async with connect(gw.url("/echo")):
            pass
    asyncio.run(scenario())
    while True:
        flags, payload = stream.next()
        assert flags == 0
        ev = S.session.SessionEvent()
        ev.ParseFromString(payload)
        if ev.type == S.session.SessionEvent.TYPE_OPENED:
            assert ev.route == "echo"
            break
    stream.close()


def test_stream_errors_are_end_of_stream_messages(gw):
    stream = Stream(gw.admin_port, "wsgate.v1.SessionService", "WatchSessions", b"{bad")
    assert stream.resp.status == 200
    flags, payload = stream.next()
    assert flags == 2, (flags, payload)
    end = json.loads(payload)
    assert end["error"]["code"] == "invalid_argument", end
    stream.close()


def test_many_watchers_leave_unary_calls_answering(gw):
    streams = [Stream(gw.admin_port, "wsgate.v1.SessionService", "WatchSessions", b"{}")
               for _ in range(20)]
    try:
        for _ in range(5):
            assert unary(gw.admin_port, "wsgate.v1.InventoryService", "GetInventory")[0] == 200
    finally:
        for s in streams:
            s.close()


def test_shutdown_ends_streams_with_an_end_of_stream_message():
    with Gateway(CONFIG, workers=1) as g:
        stream = Stream(g.admin_port, "wsgate.v1.SessionService", "WatchSessions", b"{}")
        assert stream.resp.status == 200
        g.signal(signal.SIGTERM)
        while True:
            flags, payload = stream.next()
            if flags & 2:
                break
        end = json.loads(payload)
        assert end["error"]["code"] == "unavailable", end
        stream.close()
        assert g.wait_exit() == 0


# ----- tokens and roles -----

@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    d = tmp_path_factory.mktemp("tokens")
    path = d / "tokens"
    path.write_text(f"# who may do what\nadmin {ADMIN}\nviewer {VIEWER}\n")
    with Gateway(CONFIG, workers=1, env={"WSGATE_ADMIN_TOKEN_FILE": str(path)}) as g:
        yield g


def request_for(service, method, inp):
    """A request that passes validation far enough to reach the access check."""
    return inp()


def grpc_call(g, service, method, inp, outp, streaming, token):
    ch = g.channel()
    md = [("authorization", f"Bearer {token}")] if token else []
    path = f"/{service}/{method}"
    try:
        if streaming:
            it = ch.unary_stream(path, request_serializer=inp.SerializeToString,
                                 response_deserializer=outp.FromString)(inp(), metadata=md,
                                                                        timeout=5)
            it.initial_metadata()
            # A stream that was let through stays open: the access check has passed.
            try:
                next(it)
            except grpc.RpcError as e:
                if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    return grpc.StatusCode.OK
                raise
            return grpc.StatusCode.OK
        ch.unary_unary(path, request_serializer=inp.SerializeToString,
                       response_deserializer=outp.FromString)(inp(), metadata=md, timeout=5)
        return grpc.StatusCode.OK
    except grpc.RpcError as e:
        return e.code()
    finally:
        ch.close()


def connect_code(g, service, method, streaming, token):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if streaming:
        s = http.client.HTTPConnection("127.0.0.1", g.admin_port, timeout=3)
        s.request("POST", f"/{service}/{method}", body=envelope(b"{}"),
                  headers={"Content-Type": "application/connect+json", **headers})
        r = s.getresponse()
        try:
            flags, n = struct.unpack(">BI", r.read(5))
        except (socket.timeout, TimeoutError):
            s.close()
            return "ok"  # let through: the stream waits for events
        payload = json.loads(r.read(n))
        s.close()
        return payload["error"]["code"] if flags & 2 and "error" in payload else "ok"
    st, _, body = call(g.admin_port, f"/{service}/{method}", {}, headers=headers)
    return json.loads(body).get("code", "ok") if st != 200 else "ok"


def test_every_method_needs_a_token_on_both_transports(secured):
    methods = all_methods()
    assert len(methods) >= 13
    for service, method, inp, outp, streaming in methods:
        assert grpc_call(secured, service, method, inp, outp, streaming, None) == \
            grpc.StatusCode.UNAUTHENTICATED, method
        assert grpc_call(secured, service, method, inp, outp, streaming, "wrong-token-xxxxxxxxxx") \
            == grpc.StatusCode.UNAUTHENTICATED, method
        assert connect_code(secured, service, method, streaming, None) == "unauthenticated", method
    st, h, body = call(secured.admin_port, "/wsgate.v1.RouteService/ListRoutes", {})
    assert st == 401 and h.get("www-authenticate") == "Bearer"


def test_viewers_read_and_are_refused_every_mutation(secured):
    for service, method, inp, outp, streaming in all_methods():
        g = grpc_call(secured, service, method, inp, outp, streaming, VIEWER)
        c = connect_code(secured, service, method, streaming, VIEWER)
        if is_mutation(method):
            assert g == grpc.StatusCode.PERMISSION_DENIED, method
            assert c == "permission_denied", method
        else:
            # Let through: OK, or the service's own answer to an empty request.
            assert g not in (grpc.StatusCode.PERMISSION_DENIED,
                             grpc.StatusCode.UNAUTHENTICATED), (method, g)
            assert c not in ("permission_denied", "unauthenticated"), (method, c)
    st, h, body = call(secured.admin_port, "/wsgate.v1.RouteService/DeleteRoute",
                       {"name": "echo"}, headers={"Authorization": f"Bearer {VIEWER}"})
    assert st == 403, body
    assert unary(secured.admin_port, "wsgate.v1.RouteService", "GetRoute", {"name": "echo"},
                 token=VIEWER)[0] == 200


def test_admins_change_things_and_every_mutation_is_audited(secured):
    p = secured.admin_port
    st, put = unary(p, "wsgate.v1.RouteService", "PutRoute",
                    {"route": {"name": "audited", "path": "/audited", "echo": {}}}, token=ADMIN)
    assert st == 200, put
    st, _ = unary(p, "wsgate.v1.SessionService", "SendToSession",
                  {"id": "nobody", "text": "secret payload"}, token=ADMIN)
    assert st == 404
    # Over gRPC too.
    ch = secured.channel()
    routes = S.route_grpc.RouteServiceStub(ch)
    routes.DeleteRoute(S.route.DeleteRouteRequest(name="audited"),
                       metadata=[("authorization", f"Bearer {ADMIN}")], timeout=5)
    ch.close()

    def audit_lines():
        out = []
        for line in secured.output().splitlines():
            if "audit {" in line:
                out.append(json.loads(line[line.index("audit {") + 6:]))
        return out
    lines = wait_for(lambda: [a for a in audit_lines() if a["request"].get("name") == "audited"
                              or a["request"].get("route", {}).get("name") == "audited"]
                     and audit_lines(), 5, what="audit lines")
    by_method = {}
    for a in lines:
        by_method.setdefault(a["method"], []).append(a)
    put_line = [a for a in by_method["wsgate.v1.RouteService/PutRoute"]
                if a["request"].get("route", {}).get("name") == "audited"][0]
    assert put_line["role"] == "admin" and len(put_line["token_id"]) == 8
    assert put_line["result"] == "OK" and put_line["via"].startswith("connect 127.0.0.1")
    send = [a for a in by_method["wsgate.v1.SessionService/SendToSession"]
            if a["request"].get("id") == "nobody"][0]
    assert send["result"] == "NOT_FOUND" and send["request"]["payload_bytes"] == 14
    delete = [a for a in by_method["wsgate.v1.RouteService/DeleteRoute"]
              if a["request"].get("name") == "audited" and a["role"] == "admin"][0]
    assert delete["via"].startswith("grpc ") and delete["result"] == "OK"
    # Refused mutations are audited with who tried.
    assert any(a["role"] == "viewer" and a["result"] == "PERMISSION_DENIED" for a in lines)
    # Reads are not audited; tokens and payloads never reach the log.
    assert not any(a["method"].endswith(("/ListRoutes", "/GetRoute")) for a in lines)
    log = secured.output()
    assert ADMIN not in log and VIEWER not in log and "secret payload" not in log


def test_probes_metrics_health_and_reflection_stay_open(secured):
    for path in ("/metrics", "/health", "/ready"):
        assert http_request(secured.admin_port, path)[0] == 200, path
    ch = secured.channel()
    # grpc.health.v1.Health/Check with an empty request; SERVING is field 1 = 1.
    resp = ch.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5)
    assert resp == b"\x08\x01"
    # Reflection: list_services (field 7, empty string).
    answers = ch.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")(
        iter([b"\x3a\x00"]), timeout=5)
    assert b"wsgate.v1.RouteService" in next(answers)
    ch.close()
    m = parse_metrics(http_request(secured.admin_port, "/metrics")[2].decode())
    assert metric(m, "wsgate_control_auth_denied_total", code="unauthenticated") > 0
    assert metric(m, "wsgate_control_auth_denied_total", code="permission_denied") > 0


def test_a_bad_token_file_stops_the_start(tmp_path):
    bad = tmp_path / "tokens"
    bad.write_text("root abcdefghijklmnopqrstuvwxyz\n")
    g = Gateway(CONFIG, args=["--admin-token-file", str(bad)])
    g.start(wait=False)
    assert g.wait_exit() == 2
    out = g.output()
    assert "line 1: unknown role 'root'" in out and "abcdefghijklmnop" not in out
    g.stop()
    g.tmp.cleanup()
