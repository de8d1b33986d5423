"""SessionService and InventoryService end to end (session half): real clients of every
kind connected to the real binary, operated through the generated gRPC stubs.

list/get/filter/page, CloseSession (custom code reaches the client exactly; the upstream leg
closes too), SendToSession (in order with echo traffic), WatchSessions (opened/closed with
codes, route filter, more watchers than gRPC threads), Publish on the in-memory bus, and the
inventory against the REST listing of seed 003."""

import asyncio
import json

import grpc
import pytest
import websockets

from wsgate_harness import Gateway, Upstream, connect, free_port, http_request, stubs, wait_for

UP_PORT = free_port()

CONFIG = f"""
routes:
  - name: echo
    path: /echo
    echo: {{}}
  - name: proxy
    path: /proxy
    websocket:
      upstreams: ["ws://127.0.0.1:{UP_PORT}/up"]
  - name: chat
    path: /chat/{{client_id}}
    room: {{}}
  - name: feed
    path: /feed/{{session_id}}
    pubsub: {{}}
  - name: ext
    path: /ext/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
"""

S = stubs()
State = S.session.SessionState
Event = S.session.SessionEvent


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG, workers=2) as g:
        yield g


@pytest.fixture(scope="module")
def api(gw):
    ch = gw.channel()
    grpc.channel_ready_future(ch).result(timeout=10)

    class A:
        sessions = S.session_grpc.SessionServiceStub(ch)
        inventory = S.inventory_grpc.InventoryServiceStub(ch)
    yield A
    ch.close()


def call(fn, req):
    """A unary call off the event loop (the upstream runs in the loop)."""
    return asyncio.to_thread(fn, req, timeout=10)


def ids(resp):
    return [s.id for s in resp.sessions]


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


def wait_gone(api, sid):
    def gone():
        try:
            api.sessions.GetSession(S.session.GetSessionRequest(id=sid), timeout=5)
            return False
        except grpc.RpcError as e:
            return e.code() == grpc.StatusCode.NOT_FOUND
    wait_for(gone, what=f"session {sid} to go away")


def list_all(api, **filters):
    return api.sessions.ListSessions(S.session.ListSessionsRequest(**filters), timeout=10)


def test_list_get_filter_page(gw, api):
    async def go():
        a1 = await connect(gw.url("/echo"), local_addr=("127.0.0.2", 0),
                           user_agent_header="agent-a1")
        a2 = await connect(gw.url("/echo"), local_addr=("127.0.0.2", 0))
        b1 = await connect(gw.url("/echo"), local_addr=("127.0.0.3", 0))
        alice = await connect(gw.url("/chat/alice"))
        bob1 = await connect(gw.url("/ext/bob"))
        bob2 = await connect(gw.url("/ext/bob"))
        feed = await connect(gw.url("/feed/S1?x=1"))
        try:
            for m in ("one", "two", "three"):
                await a1.send(m)
                assert await recv(a1) == m
            everything = await call(api.sessions.ListSessions, S.session.ListSessionsRequest())
            assert everything.total_size == 7
            assert everything.next_page_token == ""
            assert len(set(ids(everything))) == 7
            # Sorted by connect time: the order in which we connected.
            assert ids(everything)[3:] == ["alice", "bob", "bob~2", "S1"]
            # Natural ids: room client_id, external_client client_id (duplicate: suffix),
            # pubsub session id; generated for echo.
            assert all(i.startswith("s-") for i in ids(everything)[:3])

            by_route = await call(api.sessions.ListSessions,
                                  S.session.ListSessionsRequest(route="echo"))
            assert by_route.total_size == 3 and len(by_route.sessions) == 3
            assert {s.route for s in by_route.sessions} == {"echo"}
            by_addr = await call(api.sessions.ListSessions,
                                 S.session.ListSessionsRequest(remote_address="127.0.0.2"))
            assert ids(by_addr) == ids(everything)[:2]
            by_addr3 = await call(api.sessions.ListSessions,
                                  S.session.ListSessionsRequest(remote_address="127.0.0.3"))
            assert ids(by_addr3) == [ids(everything)[2]]
            by_prefix = await call(api.sessions.ListSessions,
                                   S.session.ListSessionsRequest(id_prefix="bob"))
            assert ids(by_prefix) == ["bob", "bob~2"]
            by_state = await call(api.sessions.ListSessions, S.session.ListSessionsRequest(
                state=State.SESSION_STATE_CONNECTING))
            assert by_state.total_size == 0

            # Pages of 3, with a connect and a disconnect between pages: nothing repeated, nothing
            # that was there throughout skipped, the newcomer (connected last) at the end.
            p1 = await call(api.sessions.ListSessions, S.session.ListSessionsRequest(page_size=3))
            assert ids(p1) == ids(everything)[:3] and p1.next_page_token
            late = await connect(gw.url("/echo"))
            await bob2.close()
            await asyncio.to_thread(wait_gone, api, "bob~2")
            p2 = await call(api.sessions.ListSessions, S.session.ListSessionsRequest(
                page_size=3, page_token=p1.next_page_token))
            p3 = await call(api.sessions.ListSessions, S.session.ListSessionsRequest(
                page_size=3, page_token=p2.next_page_token))
            assert p3.next_page_token == ""
            paged = ids(p1) + ids(p2) + ids(p3)
            assert len(paged) == len(set(paged))
            assert [i for i in ids(everything) if i != "bob~2"] == [i for i in paged[:-1]]
            await late.close()

            with pytest.raises(grpc.RpcError) as e:
                api.sessions.ListSessions(S.session.ListSessionsRequest(page_token="garbage"),
                                          timeout=10)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "page_token" in e.value.details()

            # GetSession: every field.
            sid = ids(by_addr)[0]
            s = await call(api.sessions.GetSession, S.session.GetSessionRequest(id=sid))
            assert s.route == "echo" and s.kind == "echo" and s.path == "/echo"
            assert s.remote_address == "127.0.0.2"
            assert s.remote_port == a1.local_address[1]
            assert s.user_agent == "agent-a1"
            assert s.state == State.SESSION_STATE_OPEN
            assert s.messages_in == 3 and s.bytes_in == 11
            assert s.messages_out == 3 and s.bytes_out == 11
            assert s.last_activity.seconds >= s.connected_at.seconds > 0
            assert s.limits.max_message_bytes == 16 << 20
            assert s.worker in (0, 1)
            f = await call(api.sessions.GetSession, S.session.GetSessionRequest(id="S1"))
            assert f.kind == "pubsub" and f.path == "/feed/S1"
            assert dict(f.path_params) == {"session_id": "S1"}
            assert f.bound_to == "session:S1:down,session:S1:up"
            c = await call(api.sessions.GetSession, S.session.GetSessionRequest(id="alice"))
            assert c.kind == "room" and c.bound_to == "room:chat:"
        finally:
            for ws in (a1, a2, b1, alice, bob1, bob2, feed):
                await ws.close()
    asyncio.run(go())


def test_close_with_custom_code_reaches_client_and_upstream(gw, api):
    async def go():
        async with Upstream(UP_PORT) as up:
            async with connect(gw.url("/proxy")) as ws:
                await ws.send("hi")
                assert await recv(ws) == "hi"
                [s] = (await call(api.sessions.ListSessions,
                                  S.session.ListSessionsRequest(route="proxy"))).sessions
                assert s.bound_to == f"ws://127.0.0.1:{UP_PORT}/up"
                await call(api.sessions.CloseSession,
                           S.session.CloseSessionRequest(id=s.id, code=4321, reason="bye"))
                with pytest.raises(websockets.ConnectionClosed):
                    await recv(ws)
                assert ws.close_code == 4321 and ws.close_reason == "bye"
            await asyncio.to_thread(wait_for, lambda: up.closed, 10, 0.02, "upstream close")
            assert up.closed == [(4321, "bye")]
            await asyncio.to_thread(wait_gone, api, s.id)
    asyncio.run(go())


def test_send_reaches_client_in_order_with_echo(gw, api):
    async def go():
        async with connect(gw.url("/echo")) as ws:
            [s] = (await call(api.sessions.ListSessions,
                              S.session.ListSessionsRequest(route="echo"))).sessions
            for i in range(20):
                await ws.send(f"m{i}")
                assert await recv(ws) == f"m{i}"
                await call(api.sessions.SendToSession,
                           S.session.SendToSessionRequest(id=s.id, text=f"pushed{i}"))
                # Sent after the push was queued: the push comes first.
                await ws.send(f"after{i}")
                assert await recv(ws) == f"pushed{i}"
                assert await recv(ws) == f"after{i}"
            await call(api.sessions.SendToSession,
                       S.session.SendToSessionRequest(id=s.id, binary=b"\x00\xff"))
            assert await recv(ws) == b"\x00\xff"
            got = await call(api.sessions.GetSession, S.session.GetSessionRequest(id=s.id))
            assert got.messages_out == 20 * 3 + 1
            assert got.messages_in == 40
    asyncio.run(go())


def test_errors_name_the_field(gw, api):
    def code_of(fn, req):
        with pytest.raises(grpc.RpcError) as e:
            fn(req, timeout=10)
        return e.value.code(), e.value.details()

    code, _ = code_of(api.sessions.GetSession, S.session.GetSessionRequest(id="nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(api.sessions.CloseSession, S.session.CloseSessionRequest(id="nope"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, _ = code_of(api.sessions.SendToSession,
                      S.session.SendToSessionRequest(id="nope", text="x"))
    assert code == grpc.StatusCode.NOT_FOUND

    async def go():
        async with connect(gw.url("/echo")) as ws:
            [s] = (await call(api.sessions.ListSessions,
                              S.session.ListSessionsRequest(route="echo"))).sessions
            for bad in (1001, 1006, 2999, 5000):
                code, details = code_of(api.sessions.CloseSession,
                                        S.session.CloseSessionRequest(id=s.id, code=bad))
                assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("code:")
            code, details = code_of(api.sessions.CloseSession, S.session.CloseSessionRequest(
                id=s.id, code=4000, reason="x" * 124))
            assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("reason:")
            # Still open after the refusals.
            await ws.send("alive")
            assert await recv(ws) == "alive"
            # Default code 1000, 123-byte reason accepted.
            await call(api.sessions.CloseSession,
                       S.session.CloseSessionRequest(id=s.id, reason="r" * 123))
            with pytest.raises(websockets.ConnectionClosed):
                await recv(ws)
            assert ws.close_code == 1000 and ws.close_reason == "r" * 123
    asyncio.run(go())

    code, details = code_of(api.sessions.Publish, S.session.PublishRequest(channel="", text="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and details.startswith("channel:")


def test_watch_sees_opened_and_closed(gw, api):
    ch = gw.channel()
    stub = S.session_grpc.SessionServiceStub(ch)
    echo_events = stub.WatchSessions(S.session.WatchSessionsRequest(route="echo"), timeout=60)
    all_events = stub.WatchSessions(S.session.WatchSessionsRequest(), timeout=60)
    # Initial metadata arrives once the watcher is subscribed.
    echo_events.initial_metadata()
    all_events.initial_metadata()

    async def go():
        ids_seen = []
        ws = await connect(gw.url("/echo"))
        await ws.close(4000, "client bye")
        ws = await connect(gw.url("/echo"))
        [s] = (await call(api.sessions.ListSessions,
                          S.session.ListSessionsRequest(route="echo"))).sessions
        ids_seen.append(s.id)
        await call(api.sessions.CloseSession,
                   S.session.CloseSessionRequest(id=s.id, code=4321, reason="bye"))
        with pytest.raises(websockets.ConnectionClosed):
            await recv(ws)
        # A dropped TCP connection: 1006.
        ws = await connect(gw.url("/echo"))
        ws.transport.abort()
        # Another route: only the unfiltered watcher sees it.
        async with connect(gw.url("/chat/carol")):
            pass
    asyncio.run(go())

    def take(stream, n):
        return [next(stream) for _ in range(n)]

    got = take(echo_events, 6)
    types = [e.type for e in got]
    assert types == [Event.TYPE_OPENED, Event.TYPE_CLOSED] * 3
    assert all(e.route == "echo" and e.remote_address == "127.0.0.1" for e in got)
    assert [(e.close_code, e.close_reason) for e in got[1::2]] == [
        (4000, "client bye"), (4321, "bye"), (1006, "")]
    assert all(got[i].session_id == got[i + 1].session_id for i in (0, 2, 4))
    assert all(e.dropped_before == 0 for e in got)
    everything = take(all_events, 8)
    # Across sessions the order is the order the gateway saw the events in: the aborted echo
    # connection's 1006 may be noticed after carol's handshake. Per route it is fixed.
    echo_seen = [e for e in everything if e.route == "echo"]
    chat_seen = [e for e in everything if e.route == "chat"]
    assert [(e.type, e.session_id, e.close_code) for e in echo_seen] == [
        (e.type, e.session_id, e.close_code) for e in got]
    assert [(e.type, e.session_id) for e in chat_seen] == [
        (Event.TYPE_OPENED, "carol"), (Event.TYPE_CLOSED, "carol")]
    echo_events.cancel()
    all_events.cancel()
    ch.close()


def test_publish_reaches_pubsub_session_and_room_member(gw, api):
    async def go():
        async with connect(gw.url("/feed/P1")) as feed, connect(gw.url("/chat/dave")) as member:
            r = await call(api.sessions.Publish,
                           S.session.PublishRequest(channel="session:P1:down", text="to feed"))
            assert r.bus == "memory"
            assert await recv(feed) == "to feed"
            room = (await call(api.sessions.GetSession,
                               S.session.GetSessionRequest(id="dave"))).bound_to
            await call(api.sessions.Publish,
                       S.session.PublishRequest(channel=room, binary=b"\x01\x02"))
            assert await recv(member) == b"\x01\x02"
            # What the kinds send themselves is counted in the session's traffic.
            feed_info = await call(api.sessions.GetSession, S.session.GetSessionRequest(id="P1"))
            assert (feed_info.messages_out, feed_info.bytes_out) == (1, len("to feed"))
            member_info = await call(api.sessions.GetSession,
                                     S.session.GetSessionRequest(id="dave"))
            assert (member_info.messages_out, member_info.bytes_out) == (1, 2)
    asyncio.run(go())


def test_more_watchers_than_grpc_threads_do_not_block_other_calls(gw, api):
    ch = gw.channel()
    stub = S.session_grpc.SessionServiceStub(ch)
    watchers = [stub.WatchSessions(S.session.WatchSessionsRequest(), timeout=60) for _ in range(20)]
    for w in watchers:
        w.initial_metadata()  # every stream is established and held open by the server

    async def go():
        async with connect(gw.url("/echo")):
            for _ in range(5):
                r = await call(api.sessions.ListSessions,
                               S.session.ListSessionsRequest(route="echo"))
                assert r.total_size == 1
                inv = await call(api.inventory.GetInventory, S.inventory.GetInventoryRequest())
                assert inv.workers == 2
    asyncio.run(go())
    # And every watcher got the events (skipping any late close of an earlier test's session).
    for w in watchers:
        seen = [next(w) for _ in range(1)]
        while not (seen[-1].type == Event.TYPE_OPENED and seen[-1].route == "echo"):
            assert len(seen) < 10
            seen.append(next(w))
    for w in watchers:
        w.cancel()
    ch.close()


def test_inventory_matches_sessions_and_rest_listing(gw, api):
    async def go():
        async with connect(gw.url("/ext/erin")), connect(gw.url("/echo")) as e:
            for i in range(50):
                await e.send(f"x{i}")
                await recv(e)
            status, _, body = await asyncio.to_thread(http_request, gw.port,
                                                      "/api/websocket/active-connections")
            assert status == 200
            rest = json.loads(body)["active_connections"]
            listed = ids(await call(api.sessions.ListSessions,
                                    S.session.ListSessionsRequest(route="ext")))
            assert rest == listed == ["erin"]
            inv = await call(api.inventory.GetInventory, S.inventory.GetInventoryRequest())
            routes = {r.route: r for r in inv.routes}
            assert routes["ext"].active_connections == 1 and routes["ext"].open == 1
            assert routes["echo"].open == 1 and routes["echo"].connecting == 0
            assert inv.bus == "memory" and inv.bus_up
            assert inv.workers == 2 and inv.build_version and inv.config_version >= 1

            def rate_seen():
                inv = api.inventory.GetInventory(S.inventory.GetInventoryRequest(), timeout=10)
                r = {r.route: r for r in inv.routes}["echo"]
                return r.last_10s.messages_in_per_second > 0 and r.last_1m.bytes_out_per_second > 0
            await asyncio.to_thread(wait_for, rate_seen, 5, 0.2, "echo rates in the inventory")
    asyncio.run(go())


def test_watch_sees_backpressure(gw, api):
    """A client that sends faster than it reads is paused (its echo queue passes the bound):
    the watcher gets a TYPE_BACKPRESSURE event for that session."""
    ch = gw.channel()
    stub = S.session_grpc.SessionServiceStub(ch)
    events = stub.WatchSessions(S.session.WatchSessionsRequest(route="echo"), timeout=60)
    events.initial_metadata()

    async def go():
        # max_queue=1: the client stops reading its socket once one message waits unread.
        ws = await connect(gw.url("/echo"), max_queue=1, write_limit=1 << 16)
        try:
            blob = b"x" * 65536
            for _ in range(400):  # 26 MB: more than the socket buffers and the 1 MiB bound hold
                try:
                    await asyncio.wait_for(ws.send(blob), 0.5)
                except asyncio.TimeoutError:
                    break  # the gateway stopped reading us: that is the pause
            [s] = (await call(api.sessions.ListSessions,
                              S.session.ListSessionsRequest(route="echo"))).sessions
            assert s.queued_bytes > 0
            return s.id
        finally:
            ws.transport.abort()  # a graceful close would first read megabytes of echoes
    sid = asyncio.run(go())
    seen = []
    for e in events:
        seen.append(e)
        if e.type == Event.TYPE_BACKPRESSURE:
            break
        assert len(seen) < 10, seen
    assert seen[-1].session_id == sid
    events.cancel()
    ch.close()
