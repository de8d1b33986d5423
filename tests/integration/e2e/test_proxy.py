"""The `websocket` (reverse proxy) and `echo` routes, end to end, with an independent client."""

import asyncio
import os

import pytest
import websockets

from wsgate_harness import (Gateway, Upstream, connect, free_port, handshake_status, http_request,
                            metric, parse_metrics, silent_upstream)

UPSTREAM_PORT = free_port()
SILENT_PORT = free_port()
REFUSED_PORT = free_port()  # nothing listens here

CONFIG = f"""
routes:
  - name: echo
    path: /echo
    echo: {{}}
  - name: proxy
    path: /proxy
    websocket:
      upstreams: ["ws://127.0.0.1:{UPSTREAM_PORT}/up"]
      forward_headers: [authorization]
      set_headers: {{x-gateway: wsgate}}
    limits:
      max_message_bytes: 20000000
  - name: small
    path: /small
    websocket:
      upstreams: ["ws://127.0.0.1:{UPSTREAM_PORT}/up"]
    limits:
      max_message_bytes: 1000
  - name: refused
    path: /refused
    websocket:
      upstreams: ["ws://127.0.0.1:{REFUSED_PORT}/"]
  - name: silent
    path: /silent
    websocket:
      upstreams: ["ws://127.0.0.1:{SILENT_PORT}/"]
      connect_timeout_ms: 700
  - name: param
    path: /rooms/{{room}}/ws
    echo: {{}}
"""


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG) as g:
        yield g


SIZES = [0, 1, 125, 126, 65535, 65536, 16 * 1024 * 1024]


@pytest.mark.parametrize("path", ["/echo", "/proxy"])
@pytest.mark.parametrize("size", SIZES)
def test_text_and_binary_sizes(gw, path, size):
    async def main():
        async with Upstream(UPSTREAM_PORT):
            async with connect(gw.url(path)) as ws:
                binary = os.urandom(size)
                text = ("é" * (size // 2)) + ("x" * (size % 2))  # valid UTF-8 of exactly `size` bytes
                assert len(text.encode()) == size
                await ws.send(binary)
                got = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(got, bytes) and got == binary
                await ws.send(text)
                got = await asyncio.wait_for(ws.recv(), 30)
                assert isinstance(got, str) and got == text
    asyncio.run(main())


@pytest.mark.parametrize("path", ["/echo", "/proxy"])
def test_fragmented_message_arrives_whole(gw, path):
    async def main():
        async with Upstream(UPSTREAM_PORT) as up:
            async with connect(gw.url(path)) as ws:
                await ws.send(["frag-one|", "frag-two|", "frag-three"])  # three frames, one message
                assert await asyncio.wait_for(ws.recv(), 10) == "frag-one|frag-two|frag-three"
                await ws.send([b"\x00\x01", b"\x02"])
                assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01\x02"
            if path == "/proxy":
                assert up.received == ["frag-one|frag-two|frag-three", b"\x00\x01\x02"]
    asyncio.run(main())


@pytest.mark.parametrize("path", ["/echo", "/proxy"])
def test_thousand_pipelined_messages_keep_order(gw, path):
    async def main():
        async with Upstream(UPSTREAM_PORT):
            async with connect(gw.url(path)) as ws:
                for i in range(1000):
                    await ws.send(f"m{i}" if i % 2 else f"m{i}".encode())
                for i in range(1000):
                    got = await asyncio.wait_for(ws.recv(), 10)
                    assert got == (f"m{i}" if i % 2 else f"m{i}".encode())
    asyncio.run(main())


def test_client_close_code_and_reason_reach_upstream(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT) as up:
            async with connect(gw.url("/proxy")) as ws:
                await ws.send("hello")
                await ws.recv()
                await ws.close(4001, "client says bye")
            await asyncio.wait_for(_until(lambda: up.closed), 5)
            assert up.closed == [(4001, "client says bye")]
    asyncio.run(main())


def test_upstream_close_code_and_reason_reach_client(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT):
            async with connect(gw.url("/proxy")) as ws:
                await ws.send("!close 4002 upstream says bye")
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert (ws.close_code, ws.close_reason) == (4002, "upstream says bye")
    asyncio.run(main())


def test_abrupt_upstream_drop_closes_client_with_1011(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT):
            async with connect(gw.url("/proxy")) as ws:
                await ws.send("!drop")
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1011
    asyncio.run(main())


def test_abrupt_client_drop_closes_upstream_with_1001(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT) as up:
            ws = await connect(gw.url("/proxy"))
            await ws.send("x")
            await ws.recv()
            ws.transport.abort()
            await asyncio.wait_for(_until(lambda: up.closed), 5)
            assert up.closed[0][0] == 1001
    asyncio.run(main())


def test_upstream_refused_is_502(gw):
    assert asyncio.run(handshake_status(gw.url("/refused"))) == 502


def test_upstream_silent_is_504_within_timeout(gw):
    async def main():
        async with silent_upstream(SILENT_PORT):
            # The route's timeout is 0.7 s, the client's 10 s: a 504 (rather than the client's own
            # timeout error) shows the gateway answered on its deadline instead of hanging.
            return await handshake_status(gw.url("/silent"))
    assert asyncio.run(main()) == 504


def test_unknown_path_is_404(gw):
    assert asyncio.run(handshake_status(gw.url("/no/such/route"))) == 404


def test_plain_http_to_websocket_route_is_426(gw):
    status, headers, body = http_request(gw.port, "/echo")
    assert status == 426
    assert headers.get("upgrade", "").lower() == "websocket"
    assert body
    assert http_request(gw.port, "/nothing-here")[0] == 404


def test_path_parameters_route_matches(gw):
    async def main():
        async with connect(gw.url("/rooms/blue/ws?x=1")) as ws:
            await ws.send("p")
            assert await ws.recv() == "p"
        assert await handshake_status(gw.url("/rooms/blue/extra/ws")) == 404
    asyncio.run(main())


@pytest.mark.parametrize("path", ["/small"])
def test_oversize_message_closes_1009(gw, path):
    async def main():
        async with Upstream(UPSTREAM_PORT):
            async with connect(gw.url(path)) as ws:
                await ws.send("a" * 1000)  # exactly the limit: allowed
                assert len(await ws.recv()) == 1000
                await ws.send("a" * 1001)
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 5)
                assert ws.close_code == 1009
    asyncio.run(main())


def test_subprotocol_negotiated_by_upstream(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT, subprotocols=["chat.v2"]):
            async with connect(gw.url("/proxy"), subprotocols=["chat.v1", "chat.v2"]) as ws:
                assert ws.subprotocol == "chat.v2"
                await ws.send("s")
                assert await ws.recv() == "s"
    asyncio.run(main())


def test_forwarded_and_configured_headers_reach_upstream(gw):
    async def main():
        async with Upstream(UPSTREAM_PORT) as up:
            async with connect(gw.url("/proxy"), extra_headers={
                    "Authorization": "Bearer t0k3n", "X-Secret": "not-forwarded",
                    "X-Forwarded-For": "10.1.2.3"}) as ws:
                await ws.send("!headers")
                lines = (await asyncio.wait_for(ws.recv(), 5)).split("\n")
            assert up.connections[0].path == "/up"
        headers = dict(line.split(": ", 1) for line in lines)
        assert headers["authorization"] == "Bearer t0k3n"
        assert headers["x-gateway"] == "wsgate"
        assert "x-secret" not in headers
        assert headers["x-forwarded-for"] == "10.1.2.3, 127.0.0.1"
    asyncio.run(main())


def test_health_and_ready_on_both_ports(gw):
    for port in (gw.port, gw.admin_port):
        status, _, body = http_request(port, "/health")
        assert status == 200 and b"healthy" in body
        status, _, body = http_request(port, "/ready")
        assert status == 200 and b"ready" in body


def test_metrics_count_traffic(gw):
    async def main():
        async with connect(gw.url("/echo")) as ws:
            for _ in range(7):
                await ws.send("12345")
                await ws.recv()
            await ws.close(4005, "done")
    before = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
    asyncio.run(main())

    def moved():
        after = parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())
        return after if metric(after, "wsgate_closes_total", route="echo", code="4xxx") > \
            metric(before, "wsgate_closes_total", route="echo", code="4xxx") else None
    from wsgate_harness import wait_for
    after = wait_for(moved, 5, what="close counted")
    d = lambda name, **l: metric(after, name, **l) - metric(before, name, **l)  # noqa: E731
    assert d("wsgate_messages_total", route="echo", direction="in") == 7
    assert d("wsgate_messages_total", route="echo", direction="out") == 7
    assert d("wsgate_message_bytes_total", route="echo", direction="in") == 35
    assert d("wsgate_connections_total", route="echo", outcome="accepted") == 1
    text = http_request(gw.admin_port, "/metrics")[2].decode()
    for family in ("wsgate_connections_active", "wsgate_upstream_connect_seconds_bucket",
                   "wsgate_config_version", "wsgate_build_info"):
        assert family in text, family


async def _until(pred, interval=0.01):
    while not pred():
        await asyncio.sleep(interval)
