"""Kind `room` (seed 002) end to end: the seed's REST call, its exact texts, the leave notice,
duplicate client ids, and the chat page, against the real wsgate binary (in-memory bus); and two
wsgate processes sharing one real redis-server, where each member gets each message once, a
duplicate client id is refused across processes, and members survive a Redis restart. Also the
JSON envelope format."""

import asyncio
import json
import re

import pytest
import websockets

from wsgate_harness import (Gateway, RedisServer, connect, handshake_status, http_request,
                            metric, parse_metrics, wait_for)

ROOM_CONFIG = """
routes:
  - name: chat
    path: /ws/{client_id}
    room: {}
  - name: rooms
    path: /rooms/{room}/{client_id}
    room:
      room_param: room
  - name: custom
    path: /custom/{client_id}
    room:
      self_template: "me: {message}"
      broadcast_template: "[{client_id}] {message}"
      leave_template: "bye {client_id}"
  - name: replacing
    path: /replace/{client_id}
    room:
      on_duplicate: DUPLICATE_REPLACE
  - name: jsonroom
    path: /json/{client_id}
    room:
      format: FORMAT_JSON
"""

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def gw():
    with Gateway(ROOM_CONFIG, workers=2) as g:
        yield g


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


async def assert_silent(ws, timeout=0.3):
    """Nothing more arrives (the only way to check an absence; not a synchronisation)."""
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(ws.recv(), timeout)


def test_post_api_clients_returns_a_fresh_uuid(gw):
    ids = set()
    for _ in range(3):
        status, headers, body = http_request(gw.port, "/api/clients", method="POST")
        assert status == 200
        assert headers["content-type"].startswith("application/json")
        client_id = json.loads(body)["client_id"]
        assert UUID.match(client_id), client_id
        ids.add(client_id)
    assert len(ids) == 3
    status, headers, _ = http_request(gw.port, "/api/clients", method="GET")
    assert status == 405
    assert headers.get("allow") == "POST"


def test_three_clients_exact_seed_texts_and_leave_notice(gw):
    async def main():
        a_id, b_id, c_id = (json.loads(http_request(gw.port, "/api/clients", method="POST")[2])
                            ["client_id"] for _ in range(3))
        a = await connect(gw.url(f"/ws/{a_id}")).__aenter__()
        b = await connect(gw.url(f"/ws/{b_id}")).__aenter__()
        c = await connect(gw.url(f"/ws/{c_id}")).__aenter__()
        try:
            m = metrics(gw)
            assert metric(m, "wsgate_room_members", route="chat") == 3
            published = metric(m, "wsgate_bus_published_total", bus="memory")
            assert metric(m, "wsgate_bus_up") == 1
            await a.send("hello")
            assert await recv(a) == "You wrote: hello"
            assert await recv(b) == f"Client #{a_id} says: hello"
            assert await recv(c) == f"Client #{a_id} says: hello"
            await c.send("hi all")
            assert await recv(c) == "You wrote: hi all"
            assert await recv(a) == f"Client #{c_id} says: hi all"
            assert await recv(b) == f"Client #{c_id} says: hi all"
            # Exactly once: the sender never gets its own broadcast, nobody gets it twice.
            await assert_silent(a)
            await assert_silent(b)
            await assert_silent(c)

            # One bus message per broadcast, whatever the number of members.
            assert metric(metrics(gw), "wsgate_bus_published_total", bus="memory") == published + 2
            await b.close()
            assert await recv(a) == f"Client #{b_id} left the chat"
            assert metric(metrics(gw), "wsgate_room_members", route="chat") == 2
            assert await recv(c) == f"Client #{b_id} left the chat"
            await a.send("still here")
            assert await recv(a) == "You wrote: still here"
            assert await recv(c) == f"Client #{a_id} says: still here"
            await assert_silent(a)
            await assert_silent(c)
        finally:
            for ws in (a, b, c):
                await ws.close()
    asyncio.run(main())


def test_duplicate_client_id_is_refused_with_409_and_freed_on_leave(gw):
    async def main():
        async with connect(gw.url("/ws/dup")) as first:
            assert await handshake_status(gw.url("/ws/dup")) == 409
            # The first connection is untouched.
            await first.send("x")
            assert await recv(first) == "You wrote: x"
        # Once it left, the id can join again (the registry forgot it).
        async def rejoin():
            return await handshake_status(gw.url("/ws/dup"))
        # Bounded wait (up to ~15 s: the ASan build on a loaded machine is slow to tear down).
        for _ in range(300):
            if await rejoin() == 101:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("client id 'dup' was never freed after its connection closed")
    asyncio.run(main())


def test_duplicate_client_id_with_replace_policy_closes_the_old_one_with_4000(gw):
    async def main():
        async with connect(gw.url("/replace/me")) as old, connect(gw.url("/replace/peer")) as peer:
            async with connect(gw.url("/replace/me")) as new:
                with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                    await recv(old)
                assert closed.value.code == 4000
                assert "replaced" in closed.value.reason
                # The new connection is the member now; the old one's departure was no leave.
                await new.send("I am back")
                assert await recv(new) == "You wrote: I am back"
                assert await recv(peer) == "Client #me says: I am back"
                await assert_silent(peer)
                m = metrics(gw)
                assert metric(m, "wsgate_room_members", route="replacing") == 2
            # The replacement's own leave frees the id and is announced.
            assert await recv(peer) == "Client #me left the chat"
            assert metric(metrics(gw), "wsgate_room_members", route="replacing") == 1
    asyncio.run(main())


def test_rooms_by_path_parameter_are_separate(gw):
    async def main():
        async with connect(gw.url("/rooms/red/a")) as red_a, \
                connect(gw.url("/rooms/red/b")) as red_b, \
                connect(gw.url("/rooms/blue/a")) as blue_a:
            # The same client id in two different rooms is fine.
            await red_a.send("in red")
            assert await recv(red_a) == "You wrote: in red"
            assert await recv(red_b) == "Client #a says: in red"
            await blue_a.send("in blue")
            assert await recv(blue_a) == "You wrote: in blue"
            await assert_silent(red_a)
            await assert_silent(red_b)
    asyncio.run(main())


def test_configured_templates(gw):
    async def main():
        async with connect(gw.url("/custom/x")) as x, connect(gw.url("/custom/y")) as y:
            await x.send("{client_id} literal")
            assert await recv(x) == "me: {client_id} literal"
            assert await recv(y) == "[x] {client_id} literal"
            await y.close()
            assert await recv(x) == "bye y"
    asyncio.run(main())


def test_binary_message_is_refused_with_1003(gw):
    async def main():
        async with connect(gw.url("/ws/binary-sender")) as ws:
            await ws.send(b"\x00\x01")
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                await recv(ws)
            assert closed.value.code == 1003
    asyncio.run(main())


def test_json_envelope_format(gw):
    async def main():
        async with connect(gw.url("/json/ann")) as ann:
            async with connect(gw.url("/json/bob")) as bob:
                assert json.loads(await recv(ann)) == {"type": "joined", "client_id": "bob"}
                await bob.send('say "hi" \u00e9')
                first = json.loads(await recv(bob))
                # Ann's own "joined" is broadcast once her handshake is done and may still be on
                # its way through the bus when bob (on the other worker) has subscribed: bob may
                # see it first. Nothing else may come before his own message.
                if first == {"type": "joined", "client_id": "ann"}:
                    first = json.loads(await recv(bob))
                assert first == {
                    "type": "message", "client_id": "bob", "message": 'say "hi" \u00e9',
                    "self": True}
                assert json.loads(await recv(ann)) == {
                    "type": "message", "client_id": "bob", "message": 'say "hi" \u00e9',
                    "self": False}
                await assert_silent(bob)  # no echo of its own join or broadcast
            assert json.loads(await recv(ann)) == {"type": "left", "client_id": "bob"}
            await assert_silent(ann)
    asyncio.run(main())


def test_chat_page_served_at_root(gw):
    status, headers, body = http_request(gw.port, "/")
    assert status == 200
    assert headers["content-type"].startswith("text/html")
    page = body.decode()
    assert "/api/clients" in page
    assert '"/ws/{client_id}"' in page
    assert "new WebSocket(" in page


def test_health_stays_healthy_on_the_in_memory_bus(gw):
    status, _, body = http_request(gw.port, "/health")
    assert status == 200
    assert json.loads(body) == {"status": "healthy"}


def test_two_processes_sharing_redis_deliver_exactly_once():
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        with Gateway(ROOM_CONFIG, env=env, workers=2) as gw1, \
                Gateway(ROOM_CONFIG, env=env, workers=2) as gw2:
            async def main():
                async with connect(gw1.url("/ws/one")) as one, \
                        connect(gw2.url("/ws/two")) as two, \
                        connect(gw2.url("/ws/three")) as three:
                    await one.send("across")
                    assert await recv(one) == "You wrote: across"
                    assert await recv(two) == "Client #one says: across"
                    assert await recv(three) == "Client #one says: across"
                    await two.send("back")
                    assert await recv(two) == "You wrote: back"
                    assert await recv(one) == "Client #two says: back"
                    assert await recv(three) == "Client #two says: back"
                    for ws in (one, two, three):
                        await assert_silent(ws)
                    await three.close()
                    assert await recv(one) == "Client #three left the chat"
                    assert await recv(two) == "Client #three left the chat"
                    await assert_silent(one)
                    await assert_silent(two)
            asyncio.run(main())
            assert metric(metrics(gw1), "wsgate_bus_published_total", bus="redis") >= 1


def test_room_members_survive_a_redis_restart_and_handshakes_get_503_meanwhile():
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        with Gateway(ROOM_CONFIG, env=env, workers=2) as gw1, \
                Gateway(ROOM_CONFIG, env=env, workers=2) as gw2:
            async def main():
                async with connect(gw1.url("/ws/left-side")) as one, \
                        connect(gw2.url("/ws/right-side")) as two:
                    redis.stop()
                    wait_for(lambda: http_request(gw1.port, "/ready")[0] == 503 and
                             http_request(gw2.port, "/ready")[0] == 503, 10, what="Redis down")
                    # A member could not reach the others: refused like a pubsub handshake.
                    assert await handshake_status(gw1.url("/ws/during-outage")) == 503
                    redis.start()  # same port
                    wait_for(lambda: http_request(gw1.port, "/ready")[0] == 200 and
                             http_request(gw2.port, "/ready")[0] == 200, 15, what="Redis back")
                    # Both processes resubscribed the room's channel.
                    wait_for(lambda: redis.cli("PUBSUB", "NUMSUB", "room:chat:").split()[1] == "2",
                             10, what="resubscription")
                    await one.send("after the outage")
                    assert await recv(one) == "You wrote: after the outage"
                    assert await recv(two) == "Client #left-side says: after the outage"
                    await assert_silent(one)
                    await assert_silent(two)
            asyncio.run(main())


def test_duplicate_client_id_is_refused_across_processes_sharing_redis():
    with RedisServer() as redis:
        env = {"REDIS_URL": redis.url}
        with Gateway(ROOM_CONFIG, env=env, workers=2) as gw1, \
                Gateway(ROOM_CONFIG, env=env, workers=2) as gw2:
            async def main():
                async with connect(gw1.url("/ws/twin")) as first:
                    # The lease in Redis says another process has this member.
                    assert await handshake_status(gw2.url("/ws/twin")) == 409
                    assert await handshake_status(gw1.url("/ws/twin")) == 409
                    # Another room (or route) is another key.
                    assert await handshake_status(gw2.url("/rooms/other/twin")) == 101
                    await first.send("still here")
                    assert await recv(first) == "You wrote: still here"
                # Released on leave: the other process may take the id now.
                wait_for(lambda: redis.cli("EXISTS", "wsgate:room:chat::twin").strip() == "0", 10,
                         what="lease released")
                async with connect(gw2.url("/ws/twin")) as again:
                    await again.send("moved")
                    assert await recv(again) == "You wrote: moved"
                    ttl = int(redis.cli("PTTL", "wsgate:room:chat::twin").strip())
                    assert 0 < ttl <= 30000, ttl  # a lease that expires if the process dies
            asyncio.run(main())
