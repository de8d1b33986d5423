"""Kind `pubsub` (seed 004) end to end against a real redis-server started by the test:
`redis-cli PUBLISH session:S:down` reaches the client in order, client messages appear on
`session:S:up`, the subscription exists before the handshake completes, Redis down -> 503 and
/health 503, and sessions survive a Redis restart. Also the in-memory bus (no REDIS_URL)."""

import asyncio
import json
import subprocess

import pytest

from wsgate_harness import (Gateway, RedisServer, RespSubscriber, connect, handshake_status,
                            http_request, metric, parse_metrics, wait_for)

PUBSUB_CONFIG = """
routes:
  - name: sessions
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
  - name: quiet
    path: /quiet/{session_id}
    pubsub:
      disable_up: true
"""


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


def numsub(redis, channel):
    out = redis.cli("PUBSUB", "NUMSUB", channel).split()
    return int(out[1])


@pytest.fixture
def redis():
    with RedisServer() as r:
        yield r


@pytest.fixture
def gw(redis):
    with Gateway(PUBSUB_CONFIG, env={"REDIS_URL": redis.url}, workers=2) as g:
        yield g


def test_redis_publish_reaches_client_in_order_and_client_messages_go_up(redis, gw):
    up = RespSubscriber(redis.port, "session:S1:up")
    try:
        async def main():
            async with connect(gw.url("/agent1/ws/S1")) as ws:
                # Subscribe-before-handshake: the channel is subscribed by the time the client
                # sees 101, so a message published right now is not lost.
                assert numsub(redis, "session:S1:down") == 1
                redis.cli("PUBLISH", "session:S1:down",
                          '{"type": "data", "payload": "Hello from Redis!"}')
                assert await recv(ws) == '{"type": "data", "payload": "Hello from Redis!"}'
                for i in range(5):
                    redis.cli("PUBLISH", "session:S1:down", f"m{i}")
                for i in range(5):
                    assert await recv(ws) == f"m{i}"
                await ws.send("from the client")
                await ws.send(b"\xff\x00binary")
                assert up.read_message() == ("session:S1:up", b"from the client")
                assert up.read_message() == ("session:S1:up", b"\xff\x00binary")
            # The last connection of the session gone: the process unsubscribed upstream.
            wait_for(lambda: numsub(redis, "session:S1:down") == 0, 5, what="UNSUBSCRIBE")
        asyncio.run(main())
    finally:
        up.close()


def test_many_messages_arrive_in_publish_order(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/order")) as ws:
            # One redis-cli process publishing 300 messages back to back.
            script = "".join(f"PUBLISH session:order:down n{i}\n" for i in range(300))
            subprocess.run(["redis-cli", "-p", str(redis.port)], input=script.encode(),
                           capture_output=True, check=True, timeout=10)
            got = [await recv(ws) for _ in range(300)]
            assert got == [f"n{i}" for i in range(300)]
    asyncio.run(main())


def test_two_sessions_are_separate_and_reconnect_subscribes_again(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/A")) as a, connect(gw.url("/b/ws/B")) as b:
            redis.cli("PUBLISH", "session:B:down", "for B")
            redis.cli("PUBLISH", "session:A:down", "for A")
            assert await recv(a) == "for A"
            assert await recv(b) == "for B"
        async with connect(gw.url("/a/ws/A")) as again:
            redis.cli("PUBLISH", "session:A:down", "after reconnect")
            assert await recv(again) == "after reconnect"
    asyncio.run(main())


def test_disable_up_drops_client_messages(redis, gw):
    up = RespSubscriber(redis.port, "session:Q:up")
    try:
        async def main():
            async with connect(gw.url("/quiet/Q")) as ws:
                await ws.send("not published")
                redis.cli("PUBLISH", "session:Q:down", "down still works")
                assert await recv(ws) == "down still works"
        asyncio.run(main())
        with pytest.raises(OSError):  # socket.timeout: nothing was published
            up.read_message(timeout=0.3)
    finally:
        up.close()


def test_redis_down_gives_503_and_health_503_then_sessions_recover(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/survivor")) as ws:
            redis.stop()
            wait_for(lambda: http_request(gw.port, "/health")[0] == 503, 10,
                     what="/health 503 while Redis is down")
            status, _, body = http_request(gw.port, "/health")
            assert json.loads(body)["status"] == "unhealthy"
            assert await handshake_status(gw.url("/a/ws/new-during-outage")) == 503
            assert metric(metrics(gw), "wsgate_bus_up") == 0
            redis.start()  # same port
            wait_for(lambda: http_request(gw.port, "/health")[0] == 200, 15,
                     what="/health 200 after Redis is back")
            # The open session was kept and resubscribed.
            wait_for(lambda: numsub(redis, "session:survivor:down") == 1, 10,
                     what="resubscription")
            redis.cli("PUBLISH", "session:survivor:down", "after the outage")
            assert await recv(ws) == "after the outage"
            m = metrics(gw)
            assert metric(m, "wsgate_bus_up") == 1
            assert metric(m, "wsgate_bus_reconnects_total") >= 1
            assert metric(m, "wsgate_bus_channels_active") == 1
            assert metric(m, "wsgate_bus_received_total", bus="redis") >= 1
            assert await handshake_status(gw.url("/a/ws/new-after-outage")) == 101
    asyncio.run(main())


def test_redis_unreachable_at_start_gives_503():
    dead = RedisServer()  # never started: nothing listens on its port
    with Gateway(PUBSUB_CONFIG, env={"REDIS_URL": dead.url}, workers=1) as g:
        assert http_request(g.port, "/health")[0] == 503
        assert asyncio.run(handshake_status(g.url("/a/ws/S"))) == 503


def test_malformed_redis_url_fails_start():
    g = Gateway(PUBSUB_CONFIG, env={"REDIS_URL": "http://nope"}, workers=1)
    try:
        g.start(wait=False)
        assert g.wait_exit(20) != 0
        assert "REDIS_URL" in g.output()
    finally:
        g.stop()
        g.tmp.cleanup()


def test_in_memory_bus_when_no_redis_url():
    env = {"REDIS_URL": ""}
    with Gateway(PUBSUB_CONFIG + """
  - name: chat
    path: /ws/{client_id}
    room: {}
""", env=env, workers=2) as g:
        assert http_request(g.port, "/health")[0] == 200

        async def main():
            # Without Redis a session still opens; what the client sends goes to the in-memory
            # up channel (no one listens), and nothing breaks.
            async with connect(g.url("/a/ws/mem")) as ws:
                await ws.send("nobody listens")
                await ws.ping()
        asyncio.run(main())
