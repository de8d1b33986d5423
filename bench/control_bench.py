#!/usr/bin/env python3
"""Control-plane benchmark: SessionService / InventoryService latency with many open
sessions, and the data plane's echo message rate with and without a WatchSessions stream.

    /usr/bin/python3 bench/control_bench.py [--sessions 10000] [--samples 200] [--rounds 3]

Starts its own wsgate (build/controlplane/main/wsgate, 2 workers, ephemeral ports, an `echo`
route), holds N idle WebSocket sessions open with `wsload --mode idle` (source addresses spread
over 127.0.0.2..41), then times, from one gRPC client on the same machine:
  - ListSessions, page of 100 (first page, then following the token through every page),
  - ListSessions, first page with filters (route + id_prefix; remote_address),
  - GetSession of one id, GetInventory,
  - ListSessions (page of 100) and GetInventory over the Connect protocol on the admin port, JSON
    and binary (one keep-alive HTTP/1.1 connection, as the gRPC client keeps one channel),
each `--samples` times sequentially (p50/p99 of wall-clock latency as the client sees it). Then,
with the idle sessions closed, `wsload --mode throughput` (64 B, 10 connections x 40 in flight,
5 s) against the echo route, alternating without / with one WatchSessions stream attached,
`--rounds` times. Prints a markdown table; the figures are never assertions anywhere.
Needs build/bench/wsload (cmake --build build --target wsload).
"""

import argparse
import http.client
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "e2e"))

from wsgate_harness import Gateway, stubs, wait_for  # noqa: E402

import grpc  # noqa: E402

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def pct(values, q):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def timed(fn, n):
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def wsload(build, args):
    p = subprocess.run([os.path.join(build, "bench", "wsload")] + args, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True, preexec_fn=raise_nofile, timeout=600)
    lines = [l for l in p.stdout.splitlines() if l.startswith("{")]
    if not lines:
        raise RuntimeError(f"wsload failed: {p.stderr}")
    return json.loads(lines[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    ap.add_argument("--latency-only", action="store_true",
                    help="skip the echo-rate rounds (with / without a watcher)")
    args = ap.parse_args()
    os.environ.setdefault("WSGATE_BIN", os.path.join(args.build, "controlplane", "main", "wsgate"))
    raise_nofile()  # inherited by wsgate
    S = stubs()
    rows = []
    with Gateway(CONFIG, workers=args.workers) as gw:
        ch = gw.channel()
        grpc.channel_ready_future(ch).result(timeout=10)
        sess = S.session_grpc.SessionServiceStub(ch)
        inv = S.inventory_grpc.InventoryServiceStub(ch)
        Req = S.session.ListSessionsRequest

        holder = subprocess.Popen(
            [os.path.join(args.build, "bench", "wsload"), "--mode", "idle", "--port", str(gw.port),
             "--path", "/echo", "--conns", str(args.sessions), "--src-addrs", "40",
             "--hold", "3600", "--watch-pids", str(gw.proc.pid)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=raise_nofile)
        log(f"holding {args.sessions} sessions")
        try:
            def all_open():
                if holder.poll() is not None:
                    raise RuntimeError(f"wsload exited: {holder.stderr.read().decode()}")
                return sess.ListSessions(Req(page_size=1), timeout=30).total_size >= args.sessions
            wait_for(all_open, timeout=300, interval=0.5, what="sessions open")
            total = sess.ListSessions(Req(page_size=1), timeout=30).total_size
            some_id = sess.ListSessions(Req(page_size=1), timeout=30).sessions[0].id
            n = args.samples

            def walk():
                tok, pages = "", 0
                while True:
                    r = sess.ListSessions(Req(page_size=100, page_token=tok), timeout=30)
                    pages += 1
                    tok = r.next_page_token
                    if not tok:
                        return pages
            t0 = time.perf_counter()
            pages = walk()
            walk_ms = (time.perf_counter() - t0) * 1e3
            cases = [
                ("ListSessions page_size=100 (first page)",
                 lambda: sess.ListSessions(Req(page_size=100), timeout=30)),
                ("ListSessions page_size=100, route + id_prefix filter (first page)",
                 lambda: sess.ListSessions(Req(page_size=100, route="echo", id_prefix="s-1-1"),
                                           timeout=30)),
                ("ListSessions page_size=100, remote_address filter (first page)",
                 lambda: sess.ListSessions(Req(page_size=100, remote_address="127.0.0.7"),
                                           timeout=30)),
                ("GetSession", lambda: sess.GetSession(S.session.GetSessionRequest(id=some_id),
                                                       timeout=30)),
                ("GetInventory", lambda: inv.GetInventory(S.inventory.GetInventoryRequest(),
                                                          timeout=30)),
            ]
            conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=30)

            def connect_call(method, msg, binary):
                body = msg.SerializeToString() if binary else b"{}" if not msg.ListFields() else \
                    json.dumps({k.camelcase_name: v for k, v in msg.ListFields()}).encode()
                ctype = "application/proto" if binary else "application/json"

                def call():
                    conn.request("POST", f"/wsgate.v1.{method}", body=body,
                                 headers={"Content-Type": ctype})
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{method}: HTTP {r.status}")
                return call
            for binary in (False, True):
                enc = "proto" if binary else "JSON"
                cases.append((f"Connect {enc}: ListSessions page_size=100 (first page)",
                              connect_call("SessionService/ListSessions", Req(page_size=100),
                                           binary)))
                cases.append((f"Connect {enc}: GetInventory",
                              connect_call("InventoryService/GetInventory",
                                           S.inventory.GetInventoryRequest(), binary)))
            for name, fn in cases:
                log(name)
                fn()  # warm
                lat = timed(fn, n)
                rows.append((name, total, pct(lat, 0.5), pct(lat, 0.99)))
        finally:
            holder.terminate()
            holder.wait()
        wait_for(lambda: sess.ListSessions(Req(page_size=1), timeout=30).total_size == 0,
                 timeout=120, interval=0.5, what="idle sessions closed")

        # Echo rate, alternating without / with one watcher.
        rates = {"without": [], "with": []}
        for r in range(0 if args.latency_only else args.rounds):
            order = ["without", "with"] if r % 2 == 0 else ["with", "without"]
            for mode in order:
                stream, reader = None, None
                received = []
                if mode == "with":
                    stream = sess.WatchSessions(S.session.WatchSessionsRequest(), timeout=600)
                    stream.initial_metadata()

                    def drain(st=stream):
                        try:
                            for e in st:
                                received.append(e.type)
                        except grpc.RpcError:
                            pass
                    reader = threading.Thread(target=drain, daemon=True)
                    reader.start()
                log(f"echo rate {mode} a watcher")
                res = wsload(args.build, ["--mode", "throughput", "--port", str(gw.port),
                                          "--path", "/echo", "--conns", "10", "--inflight", "40",
                                          "--size", "64", "--warmup", "1", "--duration", "5",
                                          "--src-addrs", "8", "--watch-pids", str(gw.proc.pid)])
                rates[mode].append(res["msgs_per_s"])
                if stream is not None:
                    time.sleep(0.5)
                    stream.cancel()
                    reader.join(5)
                    rates.setdefault("events", []).append(len(received))
        ch.close()

    print(f"\n{total} open sessions, {args.workers} workers, {args.samples} sequential calls each;"
          f" walking all {pages} pages of 100: {walk_ms:.0f} ms\n")
    print("| call | sessions | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    for name, t, p50, p99 in rows:
        print(f"| {name} | {t} | {p50:.2f} | {p99:.2f} |")
    if args.latency_only:
        return
    print("\n| echo 64 B, 10 conns x 40 in flight | msgs/s per round | median |\n|---|---|---:|")
    for mode in ("without", "with"):
        v = rates[mode]
        print(f"| {mode} a WatchSessions stream | {', '.join(f'{x:.0f}' for x in v)} |"
              f" {statistics.median(v):.0f} |")
    print(f"\nevents received by the watcher per round (opens + closes of wsload's 10 "
          f"connections): {rates.get('events')}")


if __name__ == "__main__":
    main()
