"""A WebSocket echo server that is not wsgate (python3-websockets), the upstream of the
conformance run: every message comes back as it came (text as text, binary as binary).

Usage: echo_upstream.py PORT. Prints "listening PORT" once it accepts connections. No size
limit (Autobahn's cases 1-7 and 10 send up to 64 KiB), no compression (the proxies offer none),
no keepalive pings of its own (they would be frames the fuzzing client does not expect)."""

import asyncio
import sys

import websockets


async def echo(ws, path=None):
    try:
        async for message in ws:
            await ws.send(message)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(echo, "127.0.0.1", port, max_size=None, max_queue=None,
                                compression=None, ping_interval=None):
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
