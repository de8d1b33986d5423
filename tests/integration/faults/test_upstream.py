"""An upstream that dies or stalls behind a `websocket` route: the upstream is a process of its
own (upstream_server.py, python3-websockets), killed with SIGKILL while a large message is in
flight, or stopped with SIGSTOP so that its socket stays open and silent. The client must get a
close with a code and a reason, nothing may hang, and /metrics must say why."""

import asyncio
import os
import signal
import subprocess
import sys

import pytest
import websockets

from wsgate_harness import (Gateway, _die_with_parent, connect, free_port, http_request, metric,
                            parse_metrics, wait_for)

HERE = os.path.dirname(os.path.abspath(__file__))


class UpstreamProcess:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, os.path.join(HERE, "upstream_server.py"),
                                      str(self.port)], stdout=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent)
        self.expect("LISTENING")

    def expect(self, line):
        got = self.proc.stdout.readline().decode().strip()
        assert got == line, f"upstream said {got!r}, expected {line!r}"

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
        self.proc.wait()


CONFIG = """
routes:
  - name: up
    path: /up
    websocket:
      upstreams: ["ws://127.0.0.1:{port}/"]
    limits:
      max_message_bytes: 100000000
  - name: pinged
    path: /pinged
    websocket:
      upstreams: ["ws://127.0.0.1:{port}/"]
    limits:
      # A timeout a loaded machine's clients (and healthy upstream) always answer within.
      ping_interval_ms: 500
      ping_timeout_ms: 2000
"""


@pytest.fixture
def upstream():
    u = UpstreamProcess()
    yield u
    u.stop()


@pytest.fixture
def gw(upstream):
    with Gateway(CONFIG.format(port=upstream.port)) as g:
        yield g


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


async def closed_with(ws):
    """The close code and reason the client got; waiting ends because the gateway closes."""
    with pytest.raises(websockets.ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 30)
    return ws.close_code, ws.close_reason


def test_upstream_killed_mid_message_closes_the_client_1011_with_a_reason(gw, upstream):
    async def main():
        async with connect(gw.url("/up")) as ws:
            await ws.send("before")
            assert await asyncio.wait_for(ws.recv(), 10) == "before"
            # 8 MiB as 128 fragments; the upstream stops before the last one and is killed.
            await ws.send("!fragments 128")
            upstream.expect("MID")
            upstream.signal(signal.SIGKILL)
            return await closed_with(ws)
    code, reason = asyncio.run(main())
    assert (code, reason) == (1011, "upstream went away")
    wait_for(lambda: metric(metrics(gw), "wsgate_closes_total", route="up", code="1011") == 1,
             10, what="the 1011 close counted")
    assert metric(metrics(gw), "wsgate_connections_active", route="up") == 0


def test_upstream_killed_while_receiving_a_large_message_closes_the_client_1011(gw, upstream):
    async def main():
        async with connect(gw.url("/up")) as ws:
            await ws.send("!stopread")
            upstream.expect("STOPPED")
            # 32 MiB towards an upstream that reads nothing: socket buffers fill, the gateway
            # stops reading the client, the message is in flight when the upstream dies.
            sending = asyncio.ensure_future(ws.send(b"\x03" * (32 << 20)))
            await asyncio.sleep(0.5)
            assert not sending.done()
            upstream.signal(signal.SIGKILL)
            result = await closed_with(ws)
            sending.cancel()
            return result
    code, reason = asyncio.run(main())
    assert (code, reason) == (1011, "upstream went away")
    wait_for(lambda: metric(metrics(gw), "wsgate_connections_active", route="up") == 0, 10,
             what="the session freed")


def test_upstream_killed_inside_a_fragment_finishes_it_and_closes_the_client_1011(gw, upstream):
    async def main():
        async with connect(gw.url("/up")) as ws:
            await ws.send("!midfragment 1000000")
            upstream.expect("MIDFRAGMENT")
            upstream.signal(signal.SIGKILL)
            # The unfinished message is never delivered: the first thing the client gets is the
            # close.
            with pytest.raises(websockets.ConnectionClosed):
                got = await asyncio.wait_for(ws.recv(), 30)
                pytest.fail(f"a message was delivered: {len(got)} bytes")
            return ws.close_code, ws.close_reason
    assert asyncio.run(main()) == (1011, "upstream went away")
    wait_for(lambda: metric(metrics(gw), "wsgate_closes_total", route="up", code="1011") == 1,
             10, what="the 1011 close counted")


def test_upstream_killed_mid_frame_closes_the_client_and_frees_the_session(gw, upstream):
    async def main():
        async with connect(gw.url("/up")) as ws:
            await ws.send("!midframe 4000000")
            upstream.expect("MIDFRAME")
            upstream.signal(signal.SIGKILL)
            return await closed_with(ws)
    code, _ = asyncio.run(main())
    # Half of a message's final frame has reached the client: no close frame can follow it, and
    # padding would deliver a corrupt message, so the gateway ends the TCP connection (the client
    # sees 1006).
    assert code == 1006
    wait_for(lambda: metric(metrics(gw), "wsgate_closes_total", route="up", code="1006") == 1,
             10, what="the abnormal close counted")
    wait_for(lambda: metric(metrics(gw), "wsgate_connections_active", route="up") == 0, 10,
             what="the session freed")
    assert http_request(gw.admin_port, "/ready")[0] == 200


def test_a_stalled_upstream_is_found_by_the_routes_pings_and_the_client_gets_1011(gw, upstream):
    async def main():
        async with connect(gw.url("/pinged")) as ws:
            await ws.send("hello")
            assert await asyncio.wait_for(ws.recv(), 10) == "hello"
            # Stopped, not dead: the socket stays open, nothing is read or answered, no FIN.
            upstream.signal(signal.SIGSTOP)
            await ws.send("into the void")
            return await closed_with(ws)
    code, reason = asyncio.run(main())
    assert (code, reason) == (1011, "upstream ping timeout")
    assert metric(metrics(gw), "wsgate_limit_hits_total", route="pinged",
                  limit="ping_timeout_ms") == 1
    # A close is counted when its session ends, which can be just after the client has the frame.
    wait_for(lambda: metric(metrics(gw), "wsgate_closes_total", route="pinged", code="1011") == 1,
             10, what="the 1011 close counted")
    # The client itself answered every ping: the gateway blamed the upstream leg only.
    wait_for(lambda: metric(metrics(gw), "wsgate_connections_active", route="pinged") == 0, 15,
             what="the session freed")


def test_an_upstream_that_answers_pings_is_kept(gw, upstream):
    async def main():
        async with connect(gw.url("/pinged")) as ws:
            # Pauses long enough for ping rounds on both legs; the test holds however many ran.
            for i in range(6):
                await ws.send(f"m{i}")
                assert await asyncio.wait_for(ws.recv(), 10) == f"m{i}"
                await asyncio.sleep(0.5)
            return ws.open
    assert asyncio.run(main())
    assert metric(metrics(gw), "wsgate_limit_hits_total", route="pinged",
                  limit="ping_timeout_ms") == 0
