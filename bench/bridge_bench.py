#!/usr/bin/python3
"""HTTP bridge throughput: requests per second through wsgate's `http_bridge` route.

    /usr/bin/python3 bench/bridge_bench.py [--wsgate build/controlplane/main/wsgate] [--seconds 5]

Starts nginx (a fixed JSON answer, keep-alive) as the HTTP target and wsgate with one worker and
two routes: `/ws` (http_bridge to nginx) and `/echo` (echo). Then, for each shape,
  - one WebSocket connection with 16 requests in flight,
  - 100 connections with one request in flight each,
it measures bridge requests per second, latency percentiles and wsgate's CPU time per request
(from /proc), and the same client shape against `/echo` with the same message: the echo figure
is what this client can drive at all, so `bridge / echo` says how much of that the bridge keeps.
The client is Python (python3-websockets), so at high rates it is the bottleneck: read the CPU
per request, not only the rate. Prints a markdown table; never part of `make test`.
"""

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import websockets

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port, deadline=10.0):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port}")


async def drive(url, message, connections, in_flight, seconds):
    """Returns (completed requests, latencies in seconds, errors)."""
    latencies = []
    errors = 0
    stop = time.monotonic() + seconds

    async def one(ws):
        nonlocal errors
        sent = {}
        next_id = 0

        async def send_one():
            nonlocal next_id
            next_id += 1
            payload = dict(message, id=next_id)
            sent[next_id] = time.perf_counter()
            await ws.send(json.dumps(payload))

        for _ in range(in_flight):
            await send_one()
        while sent:
            answer = json.loads(await ws.recv())
            rid = answer.get("id")
            t0 = sent.pop(rid, None)
            if t0 is None or "error" in answer:
                errors += 1
            else:
                latencies.append(time.perf_counter() - t0)
            if time.monotonic() < stop:
                await send_one()

    clients = [await websockets.connect(url, max_size=None, ping_interval=None, compression=None)
               for _ in range(connections)]
    try:
        await asyncio.gather(*(one(ws) for ws in clients))
    finally:
        for ws in clients:
            await ws.close()
    return latencies, errors


def percentile(values, p):
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--wsgate", default=os.path.join(REPO, "build", "controlplane", "main", "wsgate"))
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="bridgebench.")
    http_port, ws_port, admin_port, grpc_port = (free_port() for _ in range(4))
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(f"""daemon off;
worker_processes 1;
pid {work}/nginx.pid;
error_log {work}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{http_port};
        location / {{
            default_type application/json;
            return 200 '{{"response": "Success"}}';
        }}
    }}
}}
""")
    with open(os.path.join(work, "wsgate.yaml"), "w") as f:
        f.write(f"""routes:
  - name: bridge
    path: /ws
    http_bridge:
      allowed_targets: ["http://127.0.0.1:{http_port}"]
      allowed_address_ranges: [loopback]
      max_in_flight: 64
  - name: echo
    path: /echo
    echo: {{}}
""")
    procs = []
    try:
        procs.append(subprocess.Popen([args.nginx, "-p", work, "-c", os.path.join(work, "nginx.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        gw = subprocess.Popen([args.wsgate, "--config", os.path.join(work, "wsgate.yaml"),
                               "--port", str(ws_port), "--admin-port", str(admin_port),
                               "--grpc-port", str(grpc_port), "--listen", "127.0.0.1",
                               "--grpc-listen", "127.0.0.1", "--workers", "1"],
                              stdout=open(os.path.join(work, "wsgate.log"), "wb"),
                              stderr=subprocess.STDOUT)
        procs.append(gw)
        wait_port(http_port)
        wait_port(ws_port)
        message = {"url": f"http://127.0.0.1:{http_port}/api/resource", "method": "GET"}
        rows = []
        for name, connections, in_flight in (("1 connection x 16 in flight", 1, 16),
                                             ("100 connections x 1 in flight", 100, 1)):
            results = {}
            for path in ("/ws", "/echo"):
                cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
                lat, errors = asyncio.run(drive(f"ws://127.0.0.1:{ws_port}{path}", message,
                                                connections, in_flight, args.seconds))
                elapsed, cpu = time.monotonic() - t0, cpu_seconds(gw.pid) - cpu0
                results[path] = (len(lat) / elapsed, percentile(lat, 0.5), percentile(lat, 0.99),
                                 cpu / max(1, len(lat)), errors)
            b, e = results["/ws"], results["/echo"]
            rows.append((name, b, e))
        print("| shape | bridge req/s | p50 ms | p99 ms | wsgate CPU µs/req | errors "
              "| echo msg/s (same client) | wsgate CPU µs/msg | bridge / echo |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, b, e in rows:
            print(f"| {name} | {b[0]:.0f} | {b[1] * 1e3:.2f} | {b[2] * 1e3:.2f} | {b[3] * 1e6:.0f} "
                  f"| {b[4]} | {e[0]:.0f} | {e[3] * 1e6:.0f} | {b[0] / e[0]:.2f} |")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
