"""The limits end to end against the real binary: every limit enforced on real connections
AND counted in /metrics (wsgate_limit_hits_total{route,limit}); live changes over
LimitService.UpdateLimits on an open connection; LimitService errors.

Rates and timeouts are chosen so that no assertion depends on how fast this machine is: rate
limits refill one token per 10 s (a test sends its burst in far less), timeouts are waited for
with bounded waits, never measured."""

import asyncio
import json
import socket

import grpc
import pytest
import websockets

from wsgate_harness import (Gateway, connect, http_request, parse_metrics, raw_handshake,
                            read_frame, stubs, wait_for)

LIMITS_CONFIG = """
default_limits:
  max_connections_per_client: 3
routes:
  - name: plain
    path: /plain
    echo: {}
  - name: live
    path: /live
    echo: {}
  - name: rate-drop
    path: /rate-drop
    echo: {}
    limits: {messages_per_second: 0.1, message_burst: 2}
  - name: rate-close
    path: /rate-close
    echo: {}
    limits: {messages_per_second: 0.1, message_burst: 1, rate_policy: RATE_POLICY_CLOSE}
  - name: total
    path: /total
    echo: {}
    limits: {max_connections: 2}
  - name: per-address
    path: /per-address
    echo: {}
    limits: {max_connections_per_address: 2}
  - name: per-client
    path: /per-client/{client_id}
    echo: {}
    limits: {max_connections_per_client: 1}
  - name: handshakes
    path: /handshakes
    echo: {}
    limits: {handshakes_per_second: 0.1}
  - name: idle
    path: /idle
    echo: {}
    limits: {idle_timeout_ms: 1000}
  - name: lifetime
    path: /lifetime
    echo: {}
    limits: {max_lifetime_ms: 1500}
  - name: slow
    path: /slow
    echo: {}
    limits: {send_queue_bytes: 65536, slow_consumer_policy: SLOW_CONSUMER_POLICY_CLOSE}
  - name: drop-oldest
    path: /drop-oldest
    echo: {}
    limits: {send_queue_bytes: 65536, slow_consumer_policy: SLOW_CONSUMER_POLICY_DROP_OLDEST}
  - name: pings
    path: /pings
    echo: {}
    limits: {ping_interval_ms: 200, ping_timeout_ms: 1000}
  - name: small
    path: /small
    echo: {}
    limits: {max_message_bytes: 100}
  - name: room-ids
    path: /room/{room}/{client_id}
    room: {room_param: room}
    limits: {max_connections_per_client: 1}
  - name: idle-room
    path: /idle-room/{client_id}
    room: {}
    limits: {idle_timeout_ms: 800}
"""

RATE_LIMITED = '{"error":"rate_limited","limit":"messages_per_second"}'


@pytest.fixture(scope="module")
def gw():
    with Gateway(LIMITS_CONFIG, workers=2) as g:
        yield g


def hits(gw, route, limit):
    m = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
    return m.get(("wsgate_limit_hits_total", frozenset({"route": route, "limit": limit}.items())),
                 0.0)


def config_version(gw):
    m = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
    return m.get(("wsgate_config_version", frozenset()), 0.0)


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


async def closed_with(ws, timeout=10):
    """Waits for the gateway to close `ws`; returns (code, reason)."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    return ws.close_code, ws.close_reason


def kept_handshake(gw, socks, path, **kwargs):
    """raw_handshake whose socket joins `socks` (closed by the caller's finally); (status, headers)."""
    status, headers, s = raw_handshake(gw.port, path, **kwargs)
    socks.append(s)
    return status, headers


def client_frame(payload, opcode=0x2):
    """A masked client frame (mask key 0: the payload goes as is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


def read_until_close(sock):
    """Reads frames until a close frame; returns ([opcodes], close code, close reason)."""
    opcodes = []
    while True:
        opcode, payload = read_frame(sock)
        opcodes.append(opcode)
        if opcode == 0x8:
            return opcodes, int.from_bytes(payload[:2], "big"), payload[2:].decode()


def limit_stub(gw):
    return stubs().limit_grpc.LimitServiceStub(gw.channel())


# ---------------------------------------------------------------------------------------------
# Message rate.

def test_rate_drop_tells_the_client_and_keeps_the_connection(gw):
    async def main():
        async with connect(gw.url("/rate-drop")) as ws:
            for i in range(5):
                await ws.send(f"m{i}")
            got = [await recv(ws) for _ in range(5)]
            # Burst 2: two echoes, then three drops, each told with the documented frame.
            assert got == ["m0", "m1", RATE_LIMITED, RATE_LIMITED, RATE_LIMITED]
            assert ws.open
    asyncio.run(main())
    wait_for(lambda: hits(gw, "rate-drop", "messages_per_second") == 3, what="3 rate hits")


def test_rate_close_closes_1008(gw):
    async def main():
        async with connect(gw.url("/rate-close")) as ws:
            await ws.send("first")
            assert await recv(ws) == "first"
            await ws.send("second")
            assert await closed_with(ws) == (1008, "message rate limit exceeded")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "rate-close", "messages_per_second") == 1, what="1 rate hit")


# ---------------------------------------------------------------------------------------------
# Connection caps and handshake rate: refused before anything is opened, with Retry-After.

def test_max_connections_per_route_refuses_503_with_retry_after(gw):
    socks = []
    try:
        for _ in range(2):
            status, _ = kept_handshake(gw, socks, "/total")
            assert status == 101
        status, headers = kept_handshake(gw, socks, "/total")
        assert status == 503
        assert int(headers["retry-after"]) >= 1
        # Another route is not affected.
        status, _ = kept_handshake(gw, socks, "/plain")
        assert status == 101
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: hits(gw, "total", "max_connections") == 1, what="1 max_connections hit")
    # The places are freed when the connections go.
    def admitted():
        status, _, sock = raw_handshake(gw.port, "/total")
        sock.close()
        return status == 101
    wait_for(admitted, what="a free place")


def test_max_connections_per_address_by_source_address(gw):
    socks = []
    try:
        for _ in range(2):
            status, _ = kept_handshake(gw, socks, "/per-address", source="127.0.0.2")
            assert status == 101
        status, headers = kept_handshake(gw, socks, "/per-address", source="127.0.0.2")
        assert status == 429
        assert int(headers["retry-after"]) >= 1
        # Another address still connects.
        status, _ = kept_handshake(gw, socks, "/per-address", source="127.0.0.3")
        assert status == 101
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: hits(gw, "per-address", "max_connections_per_address") == 1,
             what="1 per-address hit")


def test_max_connections_per_client_id(gw):
    socks = []
    try:
        status, _ = kept_handshake(gw, socks, "/per-client/alice")
        assert status == 101
        status, headers = kept_handshake(gw, socks, "/per-client/alice")
        assert status == 429
        assert int(headers["retry-after"]) >= 1
        status, _ = kept_handshake(gw, socks, "/per-client/bob")
        assert status == 101
        # Room kind: the client id is its client_id_param; the same id in two rooms is one client.
        status, _ = kept_handshake(gw, socks, "/room/r1/carol")
        assert status == 101
        status, _ = kept_handshake(gw, socks, "/room/r2/carol")
        assert status == 429
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: hits(gw, "per-client", "max_connections_per_client") == 1,
             what="1 per-client hit")
    wait_for(lambda: hits(gw, "room-ids", "max_connections_per_client") == 1,
             what="1 per-client hit on the room route")


def test_handshake_rate_refuses_429(gw):
    socks = []
    try:
        status, _ = kept_handshake(gw, socks, "/handshakes")
        assert status == 101
        status, headers = kept_handshake(gw, socks, "/handshakes")
        assert status == 429
        assert int(headers["retry-after"]) >= 1
    finally:
        for s in socks:
            s.close()
    wait_for(lambda: hits(gw, "handshakes", "handshakes_per_second") == 1,
             what="1 handshake-rate hit")


# ---------------------------------------------------------------------------------------------
# Time-based limits.

def test_idle_timeout_closes_1001(gw):
    async def main():
        async with connect(gw.url("/idle")) as ws:
            await ws.send("hello")
            assert await recv(ws) == "hello"
            assert await closed_with(ws) == (1001, "idle timeout")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "idle", "idle_timeout_ms") == 1, what="1 idle hit")


def test_idle_timeout_sees_traffic_a_kind_sends_to_the_client(gw):
    """Kind `room` sends to the client itself: a member that only listens is not idle while
    others talk, and is once they stop."""
    async def main():
        async with connect(gw.url("/idle-room/listener")) as listener:
            async with connect(gw.url("/idle-room/talker")) as talker:
                for i in range(10):  # 2 s of traffic at 200 ms, idle timeout 800 ms
                    await talker.send(f"m{i}")
                    assert await recv(talker) == f"You wrote: m{i}"
                    assert await recv(listener) == f"Client #talker says: m{i}"
                    await asyncio.sleep(0.2)
            assert await recv(listener) == "Client #talker left the chat"
            assert await closed_with(listener) == (1001, "idle timeout")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "idle-room", "idle_timeout_ms") == 1, what="1 idle hit")


def test_max_lifetime_closes_1001_with_a_reason(gw):
    async def main():
        async with connect(gw.url("/lifetime")) as ws:
            # Traffic does not extend a lifetime.
            for i in range(3):
                await ws.send(f"m{i}")
                assert await recv(ws) == f"m{i}"
            assert await closed_with(ws) == (1001, "session lifetime exceeded")
    asyncio.run(main())
    wait_for(lambda: hits(gw, "lifetime", "max_lifetime_ms") == 1, what="1 lifetime hit")


def test_ping_timeout_closes_a_client_that_does_not_answer(gw):
    async def responsive():
        # python3-websockets answers pings by itself: the connection outlives many intervals.
        async with connect(gw.url("/pings")) as ws:
            for i in range(8):  # 2.4 s: past the silent client's ping timeout
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(ws.recv(), 0.3)
            await ws.send("still here")
            assert await recv(ws) == "still here"

    status, _, silent = raw_handshake(gw.port, "/pings")
    try:
        assert status == 101
        asyncio.run(responsive())
        opcodes, code, reason = read_until_close(silent)
        assert opcodes[0] == 0x9, opcodes  # it was pinged first
        assert (code, reason) == (1001, "ping timeout")
    finally:
        silent.close()
    wait_for(lambda: hits(gw, "pings", "ping_timeout_ms") == 1, what="1 ping-timeout hit")


# ---------------------------------------------------------------------------------------------
# Send queue and message size.

def test_send_queue_bound_closes_a_slow_client_1008(gw):
    status, _, s = raw_handshake(gw.port, "/slow", rcvbuf=4096)
    try:
        assert status == 101
        # The client sends and reads nothing meanwhile: the echoes fill its receive window and
        # the gateway's socket buffer, then the gateway's queue for this client passes 64 KiB.
        # It stops sending once the gateway counted the hit (the gateway waits for the close
        # handshake a few seconds only, and reads what we send meanwhile).
        frame = client_frame(b"x" * 65536)
        for _ in range(512):
            s.sendall(frame)
            if hits(gw, "slow", "send_queue_bytes") == 1:
                break
        # Then it reads what was queued before the close frame, promptly (the gateway waits
        # for the close handshake a few seconds only).
        _, code, reason = read_until_close(s)
        assert (code, reason) == (1008, "client too slow")
    finally:
        s.close()
    wait_for(lambda: hits(gw, "slow", "send_queue_bytes") == 1, what="1 send-queue hit")


def test_send_queue_drop_oldest_drops_and_keeps_the_newest(gw):
    status, _, s = raw_handshake(gw.port, "/drop-oldest", rcvbuf=4096)
    try:
        assert status == 101
        total = 256  # 16 MiB of echoes towards a client that reads nothing meanwhile
        for i in range(total):
            s.sendall(client_frame(b"%06d" % i + b"x" * (65536 - 6)))
        received = []
        while not received or received[-1] != total - 1:
            opcode, payload = read_frame(s)
            assert opcode == 0x2, (opcode, payload[:40])
            received.append(int(payload[:6]))
        # In order, the newest kept, some dropped, the connection still open.
        assert received == sorted(received)
        assert len(received) < total
        s.sendall(client_frame(b"after"))
        assert read_frame(s) == (0x2, b"after")
    finally:
        s.close()
    # Every message was either delivered or dropped and counted.
    wait_for(lambda: hits(gw, "drop-oldest", "send_queue_bytes") == total - len(received),
             what="one hit per dropped message")


def test_max_message_bytes_closes_1009_and_is_counted(gw):
    async def main():
        async with connect(gw.url("/small")) as ws:
            await ws.send("x" * 100)
            assert await recv(ws) == "x" * 100
            await ws.send("x" * 101)
            code, _ = await closed_with(ws)
            assert code == 1009
    asyncio.run(main())
    wait_for(lambda: hits(gw, "small", "max_message_bytes") == 1, what="1 size hit")


# ---------------------------------------------------------------------------------------------
# LimitService: live changes on an open connection, reading, errors.

def test_live_lowering_of_size_and_rate_on_an_open_connection(gw):
    s = stubs()
    ls = limit_stub(gw)

    async def main():
        async with connect(gw.url("/live")) as ws:
            for i in range(5):
                await ws.send("y" * 1000)
                assert await recv(ws) == "y" * 1000

            # Rate: lowered on the open connection; the answer says it applies to it.
            resp = ls.UpdateLimits(s.limit.UpdateLimitsRequest(
                route="live",
                limits=s.config.Limits(messages_per_second=0.1, message_burst=1),
                update_mask={"paths": ["messages_per_second", "message_burst"]}))
            assert set(resp.applied_to_open_connections) == {"messages_per_second",
                                                             "message_burst"}
            assert list(resp.applied_to_new_connections_only) == []
            wait_for(lambda: config_version(gw) >= resp.config_version, what="version applied")
            await ws.send("a")
            await ws.send("b")
            await ws.send("c")
            assert [await recv(ws) for _ in range(3)] == ["a", RATE_LIMITED, RATE_LIMITED]

            # Size: lowered below what the connection sent a moment ago.
            resp = ls.UpdateLimits(s.limit.UpdateLimitsRequest(
                route="live", limits=s.config.Limits(max_message_bytes=500),
                update_mask={"paths": ["max_message_bytes"]}))
            assert list(resp.applied_to_open_connections) == ["max_message_bytes"]
            # The mask kept the rate set a moment ago.
            assert resp.limits.messages_per_second == pytest.approx(0.1)
            assert resp.limits.max_message_bytes == 500
            wait_for(lambda: config_version(gw) >= resp.config_version, what="version applied")
            await ws.send("z" * 1000)
            code, _ = await closed_with(ws)
            assert code == 1009
    asyncio.run(main())
    wait_for(lambda: hits(gw, "live", "messages_per_second") == 2, what="2 rate hits")
    wait_for(lambda: hits(gw, "live", "max_message_bytes") == 1, what="1 size hit")


def test_get_limits_and_caps_apply_to_new_connections_only(gw):
    s = stubs()
    ls = limit_stub(gw)
    got = ls.GetLimits(s.limit.GetLimitsRequest(route="rate-drop"))
    assert got.defaults.max_connections_per_client == 3  # from default_limits: in the YAML
    (r,) = got.routes
    assert r.route == "rate-drop"
    assert r.configured.message_burst == 2
    assert r.configured.max_connections_per_client == 0
    # Effective: the route over the defaults, built-ins filled in.
    assert r.effective.max_connections_per_client == 3
    assert r.effective.rate_policy == s.config.Limits.RATE_POLICY_DROP
    assert r.effective.max_message_bytes == 16 << 20
    every = ls.GetLimits(s.limit.GetLimitsRequest())
    assert {x.route for x in every.routes} >= {"plain", "rate-drop", "slow"}

    resp = ls.UpdateLimits(s.limit.UpdateLimitsRequest(
        limits=s.config.Limits(max_connections=1000, idle_timeout_ms=600000),
        update_mask={"paths": ["max_connections", "limits.idle_timeout_ms"]}))
    assert list(resp.applied_to_new_connections_only) == ["max_connections"]
    assert list(resp.applied_to_open_connections) == ["idle_timeout_ms"]
    assert resp.limits.max_connections_per_client == 3  # kept: not in the mask
    after = ls.GetLimits(s.limit.GetLimitsRequest(route="plain"))
    assert after.routes[0].effective.max_connections == 1000
    assert after.config_version == resp.config_version
    # Back to what the other tests expect.
    ls.UpdateLimits(s.limit.UpdateLimitsRequest(
        limits=s.config.Limits(max_connections_per_client=3)))


def test_limit_service_errors(gw):
    s = stubs()
    ls = limit_stub(gw)
    with pytest.raises(grpc.RpcError) as e:
        ls.GetLimits(s.limit.GetLimitsRequest(route="nope"))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        ls.UpdateLimits(s.limit.UpdateLimitsRequest(route="nope",
                                                    limits=s.config.Limits(max_connections=1)))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as e:
        ls.UpdateLimits(s.limit.UpdateLimitsRequest(
            route="plain", limits=s.config.Limits(max_connections=1),
            update_mask={"paths": ["max_conections"]}))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "update_mask: unknown field 'max_conections'" in e.value.details()
    with pytest.raises(grpc.RpcError) as e:
        ls.UpdateLimits(s.limit.UpdateLimitsRequest(
            route="plain", limits=s.config.Limits(messages_per_second=-2),
            update_mask={"paths": ["messages_per_second"]}))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details().startswith("limits.messages_per_second: must be >= 0")
    with pytest.raises(grpc.RpcError) as e:
        ls.UpdateLimits(s.limit.UpdateLimitsRequest(
            limits=s.config.Limits(ping_timeout_ms=100)))
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert e.value.details() == "limits.ping_timeout_ms: needs limits.ping_interval_ms"
    # The refused changes changed nothing.
    assert ls.GetLimits(s.limit.GetLimitsRequest(route="plain")).routes[0].configured == \
        s.config.Limits()


def test_put_route_with_new_limits_reaches_open_connections(gw):
    s = stubs()
    rs = s.route_grpc.RouteServiceStub(gw.channel())

    async def main():
        async with connect(gw.url("/plain")) as ws:
            await ws.send("before")
            assert await recv(ws) == "before"
            route = rs.GetRoute(s.route.GetRouteRequest(name="plain"))
            route.limits.max_lifetime_ms = 300
            resp = rs.PutRoute(s.route.PutRouteRequest(route=route))
            wait_for(lambda: config_version(gw) >= resp.config_version, what="version applied")
            assert await closed_with(ws) == (1001, "session lifetime exceeded")
            route.limits.max_lifetime_ms = 0
            rs.PutRoute(s.route.PutRouteRequest(route=route))
    asyncio.run(main())
    wait_for(lambda: hits(gw, "plain", "max_lifetime_ms") == 1, what="1 lifetime hit")


# ---------------------------------------------------------------------------------------------
# WatchSessions sees every limit hit (the sessions and limits halves meet in Worker::CountLimitHit).

def test_watch_sessions_reports_limit_hits(gw):
    s = stubs()
    stub = s.session_grpc.SessionServiceStub(gw.channel())
    watch = stub.WatchSessions(s.session.WatchSessionsRequest(route="rate-close"), timeout=30)
    watch.initial_metadata()  # the stream is established before the traffic starts
    Event = s.session.SessionEvent

    async def main():
        async with connect(gw.url("/rate-close")) as ws:
            await ws.send("first")
            assert await recv(ws) == "first"
            await ws.send("second")
            assert await closed_with(ws) == (1008, "message rate limit exceeded")
    asyncio.run(main())

    seen = []
    for event in watch:
        seen.append(event)
        if event.type == Event.TYPE_CLOSED:
            break
    watch.cancel()
    types = [e.type for e in seen]
    assert types == [Event.TYPE_OPENED, Event.TYPE_LIMIT_HIT, Event.TYPE_CLOSED], seen
    hit = seen[1]
    assert hit.limit == "messages_per_second" and hit.route == "rate-close"
    assert hit.session_id == seen[0].session_id
    assert (seen[2].close_code, seen[2].close_reason) == (1008, "message rate limit exceeded")
