"""A WebSocket upstream in a process of its own, so that a test can kill -9 or SIGSTOP it.

Usage: upstream_server.py PORT. Prints "LISTENING" once it accepts, then one line per event the
test waits for. Echoes every message; text commands steer it:
  "!fragments N"  starts an N-fragment binary message (64 KiB fragments), sends all but the last,
                  prints "MID" and never finishes it (the test kills the process there)
  "!midframe N"   writes the header of one N-byte binary frame and half its payload, prints
                  "MIDFRAME" and never writes the rest
  "!midfragment N" the same with a binary fragment that is not its message's last (FIN clear),
                  prints "MIDFRAGMENT"
  "!stopread"     stops reading its socket and prints "STOPPED" (what the client sends next
                  stays in flight)
"""

import asyncio
import sys

import websockets

CHUNK = 64 * 1024


async def handler(ws, path=None):
    async for msg in ws:
        if isinstance(msg, str) and msg.startswith("!fragments "):
            n = int(msg.split()[1])
            forever = asyncio.Event()

            async def fragments():
                for _ in range(n - 1):
                    yield b"\x01" * CHUNK
                print("MID", flush=True)
                await forever.wait()
                yield b"\x01"
            await ws.send(fragments())
        elif isinstance(msg, str) and msg.startswith("!midframe "):
            n = int(msg.split()[1])
            header = bytes([0x82, 127]) + n.to_bytes(8, "big")
            ws.transport.write(header + b"\x02" * (n // 2))
            print("MIDFRAME", flush=True)
            await asyncio.Event().wait()
        elif isinstance(msg, str) and msg.startswith("!midfragment "):
            n = int(msg.split()[1])
            header = bytes([0x02, 127]) + n.to_bytes(8, "big")
            ws.transport.write(header + b"\x02" * (n // 2))
            print("MIDFRAGMENT", flush=True)
            await asyncio.Event().wait()
        elif msg == "!stopread":
            ws.transport.pause_reading()
            print("STOPPED", flush=True)
            await asyncio.Event().wait()
        else:
            await ws.send(msg)


async def main(port):
    async with websockets.serve(handler, "127.0.0.1", port, max_size=None, ping_interval=None,
                                compression=None):
        print("LISTENING", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
