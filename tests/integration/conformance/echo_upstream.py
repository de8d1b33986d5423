"""A WebSocket echo server that is not wsgate (python3-websockets), the upstream of the
conformance run: every message comes back as it came (text as text, binary as binary).

Usage: echo_upstream.py PORT. Prints "listening PORT" once it accepts connections. No size
limit (Autobahn's cases 1-7 and 10 send up to 64 KiB), no compression (the proxies offer none),
no keepalive pings of its own (they would be frames the fuzzing client does not expect).

Each message is echoed as soon as it is read, before the next frame is parsed, as strict
endpoints (websocketpp, Autobahn's own) do: python3-websockets' handler would otherwise run only
after its reader had gone on to a bad frame behind a good one and failed the connection, so the
good one's echo never went out and the fuzzing client saw NON-STRICT through any proxy (nginx as
well), which says nothing about the proxy."""

import asyncio
import sys

import websockets


class EchoAtOnce(websockets.WebSocketServerProtocol):
    async def read_message(self):
        message = await super().read_message()
        if message is not None:
            await self.send(message)
        return message


async def drain(ws, path=None):
    try:
        async for _ in ws:  # already echoed by the reader (EchoAtOnce)
            pass
    except websockets.ConnectionClosed:
        pass


async def main(port):
    async with websockets.serve(drain, "127.0.0.1", port, create_protocol=EchoAtOnce,
                                max_size=None, max_queue=None,
                                compression=None, ping_interval=None):
        print(f"listening {port}", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
