#!/usr/bin/python3
"""Checks the benchmark tools' wire format against an independent implementation.

The load generator and the echo upstream frame WebSocket by hand (bench/ws_codec.h). Their unit
test checks the codec against itself; this check puts each tool in front of Debian's
python3-websockets, so a framing mistake that both sides of our codec share cannot hide:
  - python client -> wsecho: sizes across every length encoding, text, fragments, ping, ordering,
    close code and reason, the /flood path, and bad input (not an upgrade, an unmasked frame);
  - wsload -> python echo server: throughput with large messages, handshake mode, and a refused
    upgrade reported as a failure.
Run by ctest (label bench); needs nothing but /usr/bin/python3 and python3-websockets.
"""

import argparse
import asyncio
import http
import json
import logging
import os
import socket
import subprocess
import sys

import websockets


def fail(msg):
    print(f"wire_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def expect(cond, msg):
    if not cond:
        fail(msg)


async def raw_exchange(port, request, read_for=5.0):
    """Sends raw bytes and returns what came back before the peer closed (or the deadline)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = b""
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), read_for)
            if not chunk:
                break
            data += chunk
    except asyncio.TimeoutError:
        pass
    writer.close()
    return data


async def check_wsecho(wsecho):
    proc = subprocess.Popen([wsecho, "--port", "0", "--lifetime-s", "120"],
                            stdout=subprocess.PIPE)
    try:
        port = json.loads(proc.stdout.readline())["listening"]
        url = f"ws://127.0.0.1:{port}/bench"
        async with websockets.connect(url, max_size=1 << 24, compression=None) as ws:
            for size in (0, 1, 125, 126, 127, 65535, 65536, 1 << 20):
                data = os.urandom(size)
                await ws.send(data)
                expect(await ws.recv() == data, f"binary echo of {size} bytes")
            await ws.send("héllo, wörld")
            expect(await ws.recv() == "héllo, wörld", "text echo")
            await ws.send([b"ab", b"cd", b"ef"])  # three frames: binary, continuation x2
            expect(await ws.recv() == b"abcdef", "fragmented message echoed whole")
            pong = await ws.ping(b"are you there")
            await asyncio.wait_for(pong, 5)
            for i in range(1000):
                await ws.send(f"m{i}")
            for i in range(1000):
                got = await ws.recv()
                expect(got == f"m{i}", f"ordering: expected m{i}, got {got!r}")
            await ws.close(code=4001, reason="bye")
            expect(ws.close_code == 4001 and ws.close_reason == "bye",
                   f"close code echoed: got {ws.close_code} {ws.close_reason!r}")

        # An unbounded client queue: the client keeps reading the flood until wsecho's answer to
        # its close frame, as a real slow reader would; a bounded one stalls the close handshake.
        async with websockets.connect(f"ws://127.0.0.1:{port}/flood", max_size=1 << 24,
                                      compression=None, max_queue=None, close_timeout=5) as ws:
            for _ in range(20):
                msg = await asyncio.wait_for(ws.recv(), 5)
                expect(isinstance(msg, bytes) and len(msg) == 16384, "flood message size")
            await ws.close()
            expect(ws.close_code == 1000, f"flood connection closed cleanly: {ws.close_code}")

        resp = await raw_exchange(port, b"GET /bench HTTP/1.1\r\nHost: x\r\n\r\n")
        expect(resp.startswith(b"HTTP/1.1 400"), f"plain GET refused with 400, got {resp[:40]!r}")

        upgrade = (b"GET /bench HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   b"Sec-WebSocket-Version: 13\r\n\r\n")
        unmasked = bytes([0x82, 0x03]) + b"abc"
        resp = await raw_exchange(port, upgrade + unmasked)
        head, _, frames = resp.partition(b"\r\n\r\n")
        expect(head.startswith(b"HTTP/1.1 101"), "upgrade accepted")
        expect(b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head, "RFC 6455 accept key")
        expect(frames[:4] == bytes([0x88, 0x02, 0x03, 0xEA]),
               f"unmasked client frame closed with 1002, got {frames[:4]!r}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def run_wsload(wsload, port, *args):
    proc = await asyncio.create_subprocess_exec(
        wsload, "--port", str(port), "--watch-pids", str(os.getpid()), *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = [l for l in out.decode().splitlines() if l.startswith("{")]
    expect(lines, f"wsload printed no JSON (exit {proc.returncode}): {err.decode()[-300:]}")
    return proc.returncode, json.loads(lines[-1])


async def check_wsload(wsload):
    received = []

    async def echo(ws):
        try:
            async for msg in ws:
                received.append(len(msg))
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass  # wsload ends its runs by dropping the connections

    async def refuse_some(path, headers):
        if path == "/nope":
            return http.HTTPStatus.NOT_FOUND, [], b"no route\n"
        return None

    async with websockets.serve(echo, "127.0.0.1", 0, max_size=1 << 24, compression=None,
                                process_request=refuse_some) as server:
        port = server.sockets[0].getsockname()[1]
        rc, res = await run_wsload(wsload, port, "--mode", "throughput", "--path", "/x",
                                   "--size", "70000", "--conns", "2", "--inflight", "2",
                                   "--warmup", "0.1", "--duration", "0.5")
        expect(rc == 0 and res["ok"], f"throughput against python: {res}")
        expect(res["msgs"] > 0 and res["protocol_errors"] == 0, f"messages echoed: {res}")
        expect(received and all(n == 70000 for n in received), "server saw 70000-byte messages")
        expect(res["p50_us"] > 0 and res["p99_us"] >= res["p50_us"], f"latency figures: {res}")

        rc, res = await run_wsload(wsload, port, "--mode", "handshake", "--path", "/x",
                                   "--conns", "2", "--warmup", "0.1", "--duration", "0.5")
        expect(rc == 0 and res["ok"] and res["handshakes"] > 0, f"handshake mode: {res}")

        rc, res = await run_wsload(wsload, port, "--mode", "throughput", "--path", "/nope",
                                   "--conns", "1", "--duration", "0.2", "--open-timeout", "5")
        expect(rc != 0 and not res["ok"] and res["handshake_failures"] >= 1, f"404: {res}")
        expect("404" in res["error"], f"404 named in the error: {res['error']}")

    # Bad arguments are refused, not guessed at.
    for bad in (["--mode", "nope", "--port", "1"], ["--port", "1", "--size", "4"],
                ["--port", "1", "--host", "10.0.0.1"], ["--mode", "idle", "--port", "1"]):
        proc = subprocess.run([wsload] + bad, capture_output=True, timeout=10)
        expect(proc.returncode != 0, f"wsload accepted bad arguments {bad}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wsecho", required=True)
    ap.add_argument("--wsload", required=True)
    args = ap.parse_args()
    logging.getLogger("websockets").setLevel(logging.CRITICAL)
    asyncio.run(check_wsecho(args.wsecho))
    asyncio.run(check_wsload(args.wsload))
    print("wire_check: ok")


if __name__ == "__main__":
    main()
