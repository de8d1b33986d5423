#!/usr/bin/env python3
"""The admin UI's own load on the gateway: N browsers watching /sessions while M sessions are open.

    /usr/bin/python3 bench/ui_load.py [--sessions 10000] [--browsers 5] [--seconds 30]

Starts its own wsgate (build/controlplane/main/wsgate, 2 workers, ephemeral ports, an admin token
file, the UI built beside the binary), holds M idle WebSocket sessions with `wsload --mode idle`,
then measures the gateway's CPU time (utime + stime from /proc/PID/stat) and its Connect request
count (wsgate_connect_requests_total) over `--seconds`, first with no browser, then while
bench/ui_watchers.mjs keeps N separate Chromium processes on /sessions (each page polls one
ListSessions page of 50 per second). Prints a markdown table. Figures only, never assertions.
Needs build/bench/wsload, the built UI and admin-ui/node_modules (`make build`), /usr/bin/chromium.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration", "e2e"))
sys.path.insert(0, HERE)

from wsgate_harness import Gateway, http_request, parse_metrics, wait_for  # noqa: E402
from control_bench import CONFIG, log, raise_nofile  # noqa: E402

TOKEN = "bench-admin-token-0123456789abcdef"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_requests(gw):
    status, _, body = http_request(gw.admin_port, "/metrics",
                                   headers={"Authorization": f"Bearer {TOKEN}"})
    if status != 200:
        raise RuntimeError(f"/metrics: HTTP {status}")
    return sum(v for (name, _), v in parse_metrics(body.decode()).items()
               if name == "wsgate_connect_requests_total")


def window(gw, seconds):
    c0, r0, t0 = cpu_seconds(gw.proc.pid), connect_requests(gw), time.monotonic()
    time.sleep(seconds)
    c1, r1, t1 = cpu_seconds(gw.proc.pid), connect_requests(gw), time.monotonic()
    return (c1 - c0) / (t1 - t0), (r1 - r0) / (t1 - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=10000)
    ap.add_argument("--browsers", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--build", default=os.path.join(REPO, "build"))
    args = ap.parse_args()
    os.environ.setdefault("WSGATE_BIN", os.path.join(args.build, "controlplane", "main", "wsgate"))
    raise_nofile()
    tmp = tempfile.mkdtemp(prefix="wsgate-ui-load-")
    tokens = os.path.join(tmp, "tokens")
    with open(tokens, "w") as f:
        f.write(f"admin {TOKEN}\n")
    with Gateway(CONFIG, workers=2, args=["--admin-token-file", tokens,
                                               "--max-connections", str(args.sessions + 100)]) as gw:
        holder = subprocess.Popen(
            [os.path.join(args.build, "bench", "wsload"), "--mode", "idle", "--port", str(gw.port),
             "--path", "/echo", "--conns", str(args.sessions), "--src-addrs", "40",
             "--hold", "3600", "--watch-pids", str(gw.proc.pid)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=raise_nofile)
        watchers = None
        try:
            def all_open():
                if holder.poll() is not None:
                    raise RuntimeError(f"wsload exited: {holder.stderr.read().decode()}")
                m = parse_metrics(http_request(gw.admin_port, "/metrics", headers={
                    "Authorization": f"Bearer {TOKEN}"})[2].decode())
                active = sum(v for (n, _), v in m.items() if n == "wsgate_connections_active")
                return active >= args.sessions
            log(f"holding {args.sessions} sessions")
            wait_for(all_open, timeout=300, interval=2, what="sessions open")
            log(f"no browser, {args.seconds} s")
            idle_cpu, idle_rps = window(gw, args.seconds)
            log(f"starting {args.browsers} browsers")
            watchers = subprocess.Popen(
                ["node", os.path.join(HERE, "ui_watchers.mjs"), f"http://127.0.0.1:{gw.admin_port}",
                 TOKEN, str(args.browsers), str(args.seconds + 5)],
                stdout=subprocess.PIPE, text=True)
            line = watchers.stdout.readline().strip()
            if line != "READY":
                raise RuntimeError(f"ui_watchers: {line!r}")
            time.sleep(2)
            log(f"{args.browsers} browsers on /sessions, {args.seconds} s")
            ui_cpu, ui_rps = window(gw, args.seconds)
            seen = json.loads(watchers.stdout.readline())["answers"]
            watchers.wait(timeout=60)
        finally:
            if watchers and watchers.poll() is None:
                watchers.kill()
            holder.terminate()
            holder.wait()
    extra = ui_cpu - idle_cpu
    per_req_ms = extra / (ui_rps - idle_rps) * 1e3 if ui_rps > idle_rps else float("nan")
    print(f"\n{args.sessions} open sessions; {args.browsers} Chromium processes on /sessions "
          f"(1 ListSessions page of 50 per second each); {args.seconds:.0f} s windows\n")
    print("| | gateway CPU (% of one core) | Connect requests/s |")
    print("|---|---|---|")
    print(f"| no browser | {idle_cpu * 100:.2f} | {idle_rps:.2f} |")
    print(f"| {args.browsers} browsers | {ui_cpu * 100:.2f} | {ui_rps:.2f} |")
    print(f"\nthe UI's cost: {extra * 100:.2f} % of one core, {per_req_ms:.2f} ms of CPU per "
          f"ListSessions page; answers seen per browser: {seen}")


if __name__ == "__main__":
    main()
