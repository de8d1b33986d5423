"""What a pubsub session's client sends during a Redis outage (the up channel): held and published
in order once Redis is back, or, past the session's budget, the client is closed with 1013 and
every message the bus never got is counted. Real redis-server, stopped and started again on the
same port; a raw RESP subscriber reads the up channel.

Pub/Sub keeps nothing for absent subscribers, so the test must be subscribed on the new Redis
before the gateway can publish there. The new Redis starts with a password the gateway does not
know: the gateway's reconnects are refused (the bus stays down) until the test has subscribed
and removed the password. No timing is assumed anywhere."""

import asyncio
import socket
import subprocess

import pytest
import websockets

from wsgate_harness import (Gateway, RedisServer, connect, http_request, metric, parse_metrics,
                            wait_for, _die_with_parent)

CONFIG = """
routes:
  - name: sessions
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
  - name: tight
    path: /tight/{session_id}
    pubsub:
      max_queued_bytes: 100
"""

PASSWORD = "not-the-gateways"


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


def bus_up(gw):
    return metric(metrics(gw), "wsgate_bus_up")


def resp(*parts):
    parts = [p.encode() if isinstance(p, str) else p for p in parts]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


class Subscriber:
    """A raw RESP subscriber (optionally authenticating first)."""

    def __init__(self, port, channel, password=None):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""
        if password:
            self.sock.sendall(resp("AUTH", password))
            assert self._line() == b"+OK"
        self.sock.sendall(resp("SUBSCRIBE", channel))
        assert self._value()[0] == b"subscribe"

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _value(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"$":
            n = int(rest)
            while len(self.buf) < n + 2:
                self.buf += self.sock.recv(65536)
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data
        if t == b":":
            return int(rest)
        if t == b"*":
            return [self._value() for _ in range(int(rest))]
        return rest

    def message(self):
        kind, _, payload = self._value()
        assert kind == b"message", kind
        return payload.decode()

    def close(self):
        self.sock.close()


def start_locked_redis(port):
    """redis-server on `port` that refuses clients without PASSWORD."""
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--protected-mode", "no", "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent)

    def ping():
        try:
            out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-a", PASSWORD,
                                  "--no-auth-warning", "PING"], capture_output=True, timeout=2)
            return out.stdout.strip() == b"PONG"
        except subprocess.SubprocessError:
            return False
    wait_for(ping, 10, what="the restarted redis-server")
    return proc


def unlock(port):
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "-a", PASSWORD,
                    "--no-auth-warning", "CONFIG", "SET", "requirepass", ""],
                   check=True, capture_output=True, timeout=5)


@pytest.fixture
def redis():
    r = RedisServer().start()
    yield r
    r.stop()


def test_client_messages_sent_during_an_outage_arrive_in_order_after_it(redis):
    with Gateway(CONFIG, env={"REDIS_URL": redis.url}) as gw:
        sub = Subscriber(redis.port, "session:S:up")
        locked = None

        async def main():
            nonlocal locked, sub
            async with connect(gw.url("/a/ws/S")) as ws:
                for i in range(10):
                    await ws.send(f"before-{i}")
                assert [sub.message() for _ in range(10)] == [f"before-{i}" for i in range(10)]
                redis.stop()
                sub.close()
                wait_for(lambda: bus_up(gw) == 0, 15, what="the bus to see Redis gone")
                for i in range(40):
                    await ws.send(f"during-{i}")
                wait_for(lambda: metric(metrics(gw), "wsgate_pubsub_up_buffered_total",
                                        route="sessions") == 40, 10, what="40 messages held")
                locked = start_locked_redis(redis.port)
                sub = Subscriber(redis.port, "session:S:up", password=PASSWORD)
                unlock(redis.port)
                got = [sub.message() for _ in range(40)]
                assert got == [f"during-{i}" for i in range(40)]
                wait_for(lambda: bus_up(gw) == 1, 15, what="the bus back up")
                await ws.send("after")
                assert sub.message() == "after"
                # The session went on: nothing was closed, nothing dropped.
                await ws.ping()
            m = metrics(gw)
            assert not any(k[0] == "wsgate_pubsub_up_dropped_total" for k in m), m
        try:
            asyncio.run(asyncio.wait_for(main(), 120))
        finally:
            sub.close()
            if locked:
                locked.kill()
                locked.wait()


def test_outage_longer_than_the_budget_closes_1013_and_counts_every_drop(redis):
    with Gateway(CONFIG, env={"REDIS_URL": redis.url}) as gw:
        async def main():
            async with connect(gw.url("/tight/T")) as ws, connect(gw.url("/tight/L")) as leaver:
                redis.stop()
                wait_for(lambda: bus_up(gw) == 0, 15, what="the bus to see Redis gone")
                # 100 bytes of budget: three 30-byte messages are held, the fourth is one too many.
                for i in range(3):
                    await ws.send(f"{i:030d}")
                wait_for(lambda: metric(metrics(gw), "wsgate_pubsub_up_buffered_total",
                                        route="tight") == 3, 10, what="3 messages held")
                await ws.send("x" * 30)
                with pytest.raises(websockets.ConnectionClosed):
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                assert ws.close_code == 1013
                assert "not delivered" in ws.close_reason
                # A client that leaves while its messages wait: those are counted too.
                await leaver.send("held")
                await leaver.send("held too")
            wait_for(lambda: metric(metrics(gw), "wsgate_pubsub_up_dropped_total", route="tight",
                                    reason="session_closed") == 2, 10,
                     what="the leaver's 2 drops")
            m = metrics(gw)
            assert metric(m, "wsgate_pubsub_up_dropped_total", route="tight",
                          reason="buffer_full") == 4  # the 3 held and the one over the budget
            # The gateway still answers: alive (liveness), not ready while the bus is down.
            assert http_request(gw.port, "/health")[0] == 200
            assert http_request(gw.port, "/ready")[0] == 503
        asyncio.run(asyncio.wait_for(main(), 120))
