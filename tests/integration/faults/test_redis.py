"""Redis restarted or hung under open pubsub and room sessions: a real redis-server, killed and
started again on the same port, or stopped with SIGSTOP (its socket open, nothing answered).

Every message carries a sequence number and the client checks the whole sequence: nothing that
was published while Redis was up is lost or delivered twice. Pub/Sub keeps nothing for a
subscriber that is not there, so messages are published only while Redis is up and the gateway
has resubscribed (NUMSUB on the new server says so)."""

import asyncio
import json
import signal
import subprocess
import time

import pytest

from wsgate_harness import (Gateway, RedisServer, connect, http_request, metric, parse_metrics,
                            wait_for)

CONFIG = """
routes:
  - name: sessions
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
  - name: chat
    path: /chat/{client_id}
    room: {}
"""

N = 200  # messages per phase


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


def numsub(redis, channel):
    out = redis.cli("PUBSUB", "NUMSUB", channel).split()
    return int(out[1]) if len(out) > 1 else 0


def publish(redis, channel, first, count):
    """One redis-cli process publishing `count` numbered messages back to back."""
    script = "".join(f"PUBLISH {channel} {i}\n" for i in range(first, first + count))
    subprocess.run(["redis-cli", "-p", str(redis.port)], input=script.encode(),
                   capture_output=True, check=True, timeout=30)


async def recv(ws, timeout=15):
    return await asyncio.wait_for(ws.recv(), timeout)


async def expect_silence(ws, probe):
    """Nothing but `probe` comes next: no late duplicate was queued before it."""
    assert await recv(ws) == probe


@pytest.fixture
def redis():
    r = RedisServer().start()
    yield r
    r.stop()


def test_pubsub_session_resubscribes_after_a_restart_and_loses_or_doubles_nothing(redis):
    with Gateway(CONFIG, env={"REDIS_URL": redis.url}) as gw:
        async def main():
            async with connect(gw.url("/a/ws/S")) as ws:
                publish(redis, "session:S:down", 0, N)
                assert [int(await recv(ws)) for _ in range(N)] == list(range(N))
                redis.stop()
                wait_for(lambda: metric(metrics(gw), "wsgate_bus_up") == 0, 15,
                         what="the bus to see Redis gone")
                redis.start()  # the same port, empty: the gateway must subscribe again
                wait_for(lambda: numsub(redis, "session:S:down") == 1, 20,
                         what="the session resubscribed")
                publish(redis, "session:S:down", N, N)
                assert [int(await recv(ws)) for _ in range(N)] == list(range(N, 2 * N))
                redis.cli("PUBLISH", "session:S:down", "end")
                await expect_silence(ws, "end")
            m = metrics(gw)
            assert metric(m, "wsgate_bus_reconnects_total") >= 1
        asyncio.run(asyncio.wait_for(main(), 120))


def test_room_members_resubscribe_after_a_restart_and_get_each_message_once(redis):
    with Gateway(CONFIG, env={"REDIS_URL": redis.url}) as gw:
        async def main():
            async with connect(gw.url("/chat/a")) as a, connect(gw.url("/chat/b")) as b:
                async def phase(first):
                    for i in range(first, first + N):
                        await a.send(str(i))
                    echoes = [await recv(a) for _ in range(N)]
                    assert echoes == [f"You wrote: {i}" for i in range(first, first + N)]
                    got = [await recv(b) for _ in range(N)]
                    assert got == [f"Client #a says: {i}" for i in range(first, first + N)]
                await phase(0)
                redis.stop()
                wait_for(lambda: metric(metrics(gw), "wsgate_bus_up") == 0, 15,
                         what="the bus to see Redis gone")
                redis.start()
                wait_for(lambda: metric(metrics(gw), "wsgate_bus_up") == 1, 20,
                         what="the bus back up")
                await phase(N)
                await b.send("end")
                assert await recv(b) == "You wrote: end"
                await expect_silence(a, "Client #b says: end")
        asyncio.run(asyncio.wait_for(main(), 120))


def test_a_hung_redis_is_reported_down_within_the_probe_timeout_and_recovers(redis):
    with Gateway(CONFIG, env={"REDIS_URL": redis.url}) as gw:
        async def main():
            async with connect(gw.url("/a/ws/H")) as ws:
                redis.cli("PUBLISH", "session:H:down", "0")
                assert await recv(ws) == "0"
                redis.proc.send_signal(signal.SIGSTOP)
                stopped = time.monotonic()
                try:
                    # The TCP connection stays open: only the bus's health probe (a PUBLISH every
                    # second, down after 3 s without an answer) can tell.
                    wait_for(lambda: http_request(gw.admin_port, "/ready")[0] == 503, 20,
                             what="/ready 503 while Redis hangs")
                    print(f"hung Redis reported down {time.monotonic() - stopped:.2f} s after "
                          "SIGSTOP")
                    status, _, body = http_request(gw.admin_port, "/ready")
                    assert json.loads(body) == {"status": "not_ready", "redis": "down"}
                    assert metric(metrics(gw), "wsgate_bus_up") == 0
                    assert http_request(gw.admin_port, "/health")[0] == 200
                finally:
                    redis.proc.send_signal(signal.SIGCONT)
                wait_for(lambda: http_request(gw.admin_port, "/ready")[0] == 200, 20,
                         what="/ready 200 after SIGCONT")
                wait_for(lambda: numsub(redis, "session:H:down") == 1, 20,
                         what="the session resubscribed")
                publish(redis, "session:H:down", 1, N)
                got = [int(await recv(ws)) for _ in range(N)]
                assert got == list(range(1, N + 1))
                redis.cli("PUBLISH", "session:H:down", "end")
                await expect_silence(ws, "end")
            assert metric(metrics(gw), "wsgate_bus_reconnects_total") >= 1
        asyncio.run(asyncio.wait_for(main(), 120))
