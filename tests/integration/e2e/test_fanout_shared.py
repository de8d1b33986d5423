"""The fan-out kinds send one frame per bus message to all subscribers of a worker (one worker
here, so every member shares it): a room and a pubsub channel with several fast subscribers and
one that reads nothing. The slow one is closed with 1008 alone, after a correct prefix; every
fast one gets every message exactly once, in order, byte-identical, text and binary frames
each as published."""

import asyncio
import hashlib

import grpc
import pytest

from wsgate_harness import (Gateway, connect, http_request, metric, parse_metrics,
                            raw_handshake, read_frame, stubs, wait_for)

CONFIG = """
routes:
  - name: chat
    path: /ws/{client_id}
    room: {}
  - name: news
    path: /news/{session_id}
    pubsub:
      down_channel: "news"
      disable_up: true
      max_queued_bytes: 1048576
"""

CLOSE = 0x8


def body(i, size):
    """Message i: its index first, then bytes that differ per message (a stale or wrong frame
    shows as a wrong index or a wrong digest)."""
    head = f"{i:05d}:".encode()
    filler = hashlib.sha256(head).hexdigest().encode()
    return head + (filler * (size // len(filler) + 1))[:size - len(head)]


def metrics(g):
    return parse_metrics(http_request(g.admin_port, "/metrics")[2].decode())


def read_until_close(sock):
    """Every data frame (opcode, payload) before the close frame, and the close's payload."""
    frames = []
    while True:
        opcode, payload = read_frame(sock)
        if opcode == CLOSE:
            return frames, payload
        frames.append((opcode, payload))


def assert_prefix(got, expected):
    """The slow subscriber got the first len(got) messages, in order, intact."""
    assert 0 < len(got) < len(expected)
    for k, (frame, want) in enumerate(zip(got, expected)):
        assert frame == want, f"slow subscriber's frame {k} differs"


@pytest.fixture(scope="module")
def gw():
    with Gateway(CONFIG, workers=1, env={"REDIS_URL": ""}) as g:
        yield g


def test_room_slow_member_closed_alone_others_get_every_message_once(gw):
    # 800 x 32 KiB = 25 MiB: more than the room's 10 MiB queue bound plus what the kernel's
    # socket buffers hold for a member that reads nothing.
    n, size = 800, 32 * 1024
    texts = [body(i, size).decode() for i in range(n)]
    status, _, slow = raw_handshake(gw.port, "/ws/slow", rcvbuf=4096)
    assert status == 101

    async def main():
        fast = [await connect(gw.url(f"/ws/f{k}"), max_size=None, max_queue=None)
                for k in range(3)]
        sender = await connect(gw.url("/ws/sender"), max_size=None, max_queue=None)
        got = [[] for _ in fast]

        async def drain(k):
            while len(got[k]) < n:
                got[k].append(await asyncio.wait_for(fast[k].recv(), 30))

        readers = [asyncio.create_task(drain(k)) for k in range(len(fast))]
        for t in texts:  # one in flight: the sender's own answer paces it
            await sender.send(t)
            assert await asyncio.wait_for(sender.recv(), 30) == "You wrote: " + t
        await asyncio.gather(*readers)
        for k in range(len(fast)):
            assert got[k] == ["Client #sender says: " + t for t in texts], f"member f{k}"
        for ws in fast + [sender]:
            await ws.close()

    try:
        asyncio.run(main())
        frames, close = read_until_close(slow)
    finally:
        slow.close()
    assert int.from_bytes(close[:2], "big") == 1008 and close[2:] == b"client too slow"
    assert_prefix(frames, [(0x1, ("Client #sender says: " + t).encode()) for t in texts])
    wait_for(lambda: metric(metrics(gw), "wsgate_backpressure_closes_total", route="chat") == 1,
             what="one backpressure close on the room")


def test_pubsub_channel_text_and_binary_slow_session_closed_alone(gw):
    s = stubs()
    # 10 MiB: more than the route's 1 MiB bound plus what the kernel buffers for the slow socket
    # (its send buffer autotunes up to tcp_wmem's 4 MiB on loopback; 3.75 MiB fitted in once).
    n, size = 640, 16 * 1024
    # Even messages binary (bytes that are not UTF-8), odd ones text.
    msgs = [(b"\xff\xfe" + body(i, size)[2:], True) if i % 2 == 0 else (body(i, size), False)
            for i in range(n)]
    expected = [(0x2 if binary else 0x1, payload) for payload, binary in msgs]
    status, _, slow = raw_handshake(gw.port, "/news/slow", rcvbuf=4096)
    assert status == 101

    async def main():
        fast = [await connect(gw.url(f"/news/f{k}"), max_size=None, max_queue=None)
                for k in range(3)]
        got = [[] for _ in fast]

        async def drain(k):
            while len(got[k]) < n:
                m = await asyncio.wait_for(fast[k].recv(), 30)
                got[k].append((0x2, m) if isinstance(m, bytes) else (0x1, m.encode()))

        readers = [asyncio.create_task(drain(k)) for k in range(len(fast))]
        with gw.channel() as ch:
            publish = s.session_grpc.SessionServiceStub(ch).Publish
            for payload, binary in msgs:
                req = (s.session.PublishRequest(channel="news", binary=payload) if binary else
                       s.session.PublishRequest(channel="news", text=payload.decode()))
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda r=req: publish(r, timeout=10))
        await asyncio.gather(*readers)
        for k in range(len(fast)):
            assert got[k] == expected, f"session f{k}"
        for ws in fast:
            await ws.close()

    try:
        asyncio.run(main())
        frames, close = read_until_close(slow)
    finally:
        slow.close()
    assert int.from_bytes(close[:2], "big") == 1008 and close[2:] == b"client too slow"
    assert_prefix(frames, expected)
    wait_for(lambda: metric(metrics(gw), "wsgate_backpressure_closes_total", route="news") == 1,
             what="one backpressure close on the pubsub route")

