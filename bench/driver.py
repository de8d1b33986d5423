#!/usr/bin/python3
"""Benchmark driver for `make bench`: nginx vs wsgate, side by side, alternating.

Started by bench/run.sh, which installs the packages, raises the open-files limit and cleans up
anything left behind. This script starts the echo upstream (bench/wsecho), then for every round,
scenario and proxy starts a fresh proxy (nginx from the Debian package, or build/.../wsgate) in
front of it, runs bench/wsload against it, and stops the proxy. The proxy order flips every round.
It prints one markdown table and writes the same figures, with every raw result, as JSON into
bench/results/.

Standard library only (/usr/bin/python3). All traffic stays on 127.0.0.0/8.
"""

import argparse
import datetime
import json
import re
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXIES = ("nginx", "wsgate")


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def free_port():
    """A currently free loopback port (the kernel's choice). Tiny race until the proxy binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, poll=0.05):
    """Polls predicate() until it is true or the deadline passes (then raises)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(poll)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}")


def children_of(pid):
    """Pids whose parent is pid, from /proc."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            out.append(int(entry))
    return sorted(out)


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class Processes:
    """Every process this driver starts, so that all of them are stopped whatever happens.

    Their pids are also written to <workdir>/pids, which run.sh's EXIT trap reads in case this
    script itself is killed."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.procs = []

    def start(self, argv, name, **kwargs):
        log_path = os.path.join(self.workdir, f"{name}.log")
        stderr = open(log_path, "ab")
        proc = subprocess.Popen(argv, stderr=stderr, **kwargs)
        stderr.close()
        proc.bench_name = name
        proc.bench_log = log_path
        self.procs.append(proc)
        self._write_pids()
        return proc

    def _write_pids(self):
        # Only live processes are listed, so the EXIT trap never signals a recycled pid.
        path = os.path.join(self.workdir, "pids")
        with open(path + ".tmp", "w") as f:
            f.write("".join(f"{p.pid}\n" for p in self.procs))
        os.replace(path + ".tmp", path)

    def stop(self, proc, grace=5.0):
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                log(f"{proc.bench_name} (pid {proc.pid}) ignored SIGTERM for {grace}s: SIGKILL")
                proc.kill()
                proc.wait(timeout=10)
        if proc in self.procs:
            self.procs.remove(proc)
            self._write_pids()

    def stop_all(self):
        for proc in list(reversed(self.procs)):
            try:
                self.stop(proc, grace=3.0)
            except Exception as e:  # keep stopping the others
                log(f"could not stop pid {proc.pid}: {e}")


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.workdir = args.workdir
        self.procs = Processes(self.workdir)
        self.wsload = os.path.join(self.build, "bench", "wsload")
        self.wsecho = os.path.join(self.build, "bench", "wsecho")
        self.wsgate = os.path.join(self.build, "controlplane", "main", "wsgate")
        self.nginx = args.nginx
        self.all_cores = args.all_cores
        self.start_count = 0
        self.echo = None
        self.echo_port = None
        self.wsgate_help = ""
        self.send_queue_limit = False
        # Descriptors nginx may use (worker_rlimit_nofile); the curves raise it for 50,000 idle
        # connections (two sockets each in the proxy).
        self.fd_limit = 20000

    # ---- pinning ---------------------------------------------------------------------------------

    def pinned(self, core, argv):
        """The proxy goes on core 0, the load generator and the upstream on core 1; in --all-cores
        mode nothing is pinned."""
        if self.all_cores:
            return argv
        return ["taskset", "-c", str(core)] + argv

    # ---- the echo upstream -----------------------------------------------------------------------

    def start_echo(self):
        self.echo = self.procs.start(
            self.pinned(1, [self.wsecho, "--port", "0", "--lifetime-s", "3600"]), "wsecho",
            stdout=subprocess.PIPE)
        line = self.echo.stdout.readline().decode()
        if not line:
            raise RuntimeError("wsecho exited: " + tail(self.echo.bench_log))
        self.echo_port = json.loads(line)["listening"]
        log(f"wsecho on 127.0.0.1:{self.echo_port} (pid {self.echo.pid})")

    # ---- proxies ---------------------------------------------------------------------------------

    def start_nginx(self):
        self.start_count += 1
        port = free_port()
        workers = 2 if self.all_cores else 1
        prefix = os.path.join(self.workdir, f"nginx-{self.start_count}")
        os.makedirs(prefix, exist_ok=True)
        conf = os.path.join(prefix, "nginx.conf")
        with open(conf, "w") as f:
            f.write(f"""# Generated by bench/driver.py: nginx as a plain WebSocket reverse proxy.
daemon off;
master_process on;
worker_processes {workers};
worker_rlimit_nofile {self.fd_limit};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{
    worker_connections {self.fd_limit - 500};
    use epoll;
}}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream wsecho {{
        server 127.0.0.1:{self.echo_port};
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://wsecho;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
        }}
    }}
}}
""")
        proc = self.procs.start(
            self.pinned(0, [self.nginx, "-p", prefix, "-e", f"{prefix}/error.log", "-c", conf]),
            f"nginx-{self.start_count}", stdout=subprocess.DEVNULL)
        try:
            wait_until(lambda: proc.poll() is not None or
                       (len(children_of(proc.pid)) >= workers and port_accepts(port)),
                       15, "nginx to listen")
            if proc.poll() is not None:
                raise RuntimeError("nginx exited: " + tail(proc.bench_log) +
                                   tail(f"{prefix}/error.log"))
        except Exception:
            self.procs.stop(proc)
            raise
        # The master only supervises: the workers do the proxying and hold the connections.
        return proc, port, children_of(proc.pid)

    def wsgate_config(self, path):
        upstream = f"ws://127.0.0.1:{self.echo_port}"
        # drop_oldest: the slow reader stays connected for the whole run and what wsgate holds
        # for it is bounded by the limit (the default `close` policy would end the scenario by
        # closing it once 1 MiB is queued).
        send_queue = ("      send_queue_bytes: 1048576\n"
                      "      slow_consumer_policy: SLOW_CONSUMER_POLICY_DROP_OLDEST\n"
                      if self.send_queue_limit else "")
        with open(path, "w") as f:
            f.write(f"""# Generated by bench/driver.py.
server:
  listen_address: 127.0.0.1
routes:
  - name: bench
    path: /bench
    websocket:
      upstreams: ["{upstream}/bench"]
      connect_timeout_ms: 5000
    limits:
      max_message_bytes: 1048576
  - name: flood
    path: /flood
    websocket:
      upstreams: ["{upstream}/flood"]
      connect_timeout_ms: 5000
    limits:
      max_message_bytes: 1048576
{send_queue}""")

    def check_wsgate_config(self):
        """Uses a send-queue limit on the slow reader's route if this wsgate accepts one (it
        refuses limits it does not enforce yet); says so either way."""
        path = os.path.join(self.workdir, "wsgate-check.yaml")
        for limit in (True, False):
            self.send_queue_limit = limit
            self.wsgate_config(path)
            res = subprocess.run([self.wsgate, "--check-config", path], capture_output=True,
                                 timeout=30)
            if res.returncode == 0:
                if not limit:
                    log("this wsgate refuses send_queue_bytes (not enforced yet): the slow "
                        "reader runs without a send-queue limit")
                return
            reason = (res.stdout + res.stderr).decode(errors="replace").strip()
            log(f"wsgate --check-config refused the generated config: {reason}")
        raise RuntimeError("wsgate refuses the generated config (see above)")

    def start_wsgate(self):
        self.start_count += 1
        port, admin, grpc = free_port(), free_port(), free_port()
        name = f"wsgate-{self.start_count}"
        cfg = os.path.join(self.workdir, f"{name}.yaml")
        self.wsgate_config(cfg)
        argv = [self.wsgate, "--config", cfg, "--port", str(port), "--admin-port", str(admin),
                "--grpc-port", str(grpc), "--workers", "2" if self.all_cores else "1",
                "--log-level", "warn", "--shutdown-grace", "1"]
        # Loopback only, whatever the defaults are.
        for flag in ("--listen", "--grpc-listen", "--admin-listen"):
            if re.search(r"(^|\s|,)" + flag + r"\b", self.wsgate_help):
                argv += [flag, "127.0.0.1"]
        # Environment overrides (HOST, PORT, ...) must not change what is measured.
        env = {k: v for k, v in os.environ.items()
               if k not in ("HOST", "PORT", "WSGATE_LOG_LEVEL", "REDIS_URL")}
        proc = self.procs.start(self.pinned(0, argv), name, stdout=subprocess.DEVNULL, env=env)

        def ready():
            if proc.poll() is not None:
                return True
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        try:
            wait_until(ready, 20, "wsgate /ready")
            if proc.poll() is not None:
                raise RuntimeError(f"wsgate exited with {proc.returncode}: " +
                                   tail(proc.bench_log))
            wait_until(lambda: port_accepts(port), 5, "wsgate data port")
        except Exception:
            self.procs.stop(proc)
            raise
        return proc, port, [proc.pid]

    # ---- one measurement -------------------------------------------------------------------------

    def run_load(self, scenario, proxy, port, pids, label):
        argv = [self.wsload, "--mode", scenario["mode"], "--port", str(port),
                "--watch-pids", ",".join(map(str, pids)), "--echo-pid", str(self.echo.pid),
                "--label", label] + scenario["args"]
        timeout = scenario["timeout"]
        try:
            res = subprocess.run(self.pinned(1, argv), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"ok": False, "error": f"wsload timed out after {timeout}s"}
        lines = [l for l in res.stdout.decode(errors="replace").splitlines() if l.startswith("{")]
        if not lines:
            return {"ok": False, "error": f"wsload exit {res.returncode}: "
                    + res.stderr.decode(errors="replace")[-500:]}
        return json.loads(lines[-1])

    def measure(self, scenario, proxy, rnd):
        label = f"{proxy}/{scenario['name']}/round{rnd + 1}"
        try:
            proc, port, pids = self.start_nginx() if proxy == "nginx" else self.start_wsgate()
        except Exception as e:
            log(f"{label}: could not start {proxy}: {e}")
            return {"ok": False, "error": f"could not start {proxy}: {e}"}
        try:
            result = self.run_load(scenario, proxy, port, pids, label)
            if proc.poll() is not None:
                result["ok"] = False
                result["error"] = (f"{proxy} died during the run (exit {proc.returncode}): "
                                   + tail(proc.bench_log, 5))
        finally:
            self.procs.stop(proc)
        status = "ok" if result.get("ok") else f"FAILED: {result.get('error')}"
        key = scenario["figures"][0][1]
        log(f"{label}: {key}={result.get(key)} {status}")
        return result

    # ---- the whole run ---------------------------------------------------------------------------

    def run(self):
        if os.path.exists(self.wsgate):
            try:
                self.wsgate_help = subprocess.run([self.wsgate, "--help"], capture_output=True,
                                                  timeout=10).stdout.decode(errors="replace")
            except Exception:
                self.wsgate_help = ""
        self.start_echo()
        proxies = [p for p in PROXIES if p in self.args.proxies.split(",")]
        if "wsgate" in proxies:
            self.check_wsgate_config()
        scenarios = make_scenarios(self.args)
        raw = {s["name"]: {p: [] for p in proxies} for s in scenarios}
        load_before = os.getloadavg()
        t0 = time.monotonic()
        for rnd in range(self.args.rounds):
            order = proxies if rnd % 2 == 0 else list(reversed(proxies))
            log(f"round {rnd + 1}/{self.args.rounds}, order {' then '.join(order)}")
            for scenario in scenarios:
                for proxy in order:
                    raw[scenario["name"]][proxy].append(self.measure(scenario, proxy, rnd))
        elapsed = time.monotonic() - t0
        return scenarios, proxies, raw, load_before, elapsed


def make_scenarios(args):
    quick = args.quick
    warm, dur = ("0.3", "1") if quick else ("1", "5")
    idle_conns = args.idle_conns or (1000 if quick else 8000)
    slow_s = "3" if quick else "20"
    tp = lambda size, conns, inflight: [
        "--path", "/bench", "--size", str(size), "--conns", str(conns), "--inflight",
        str(inflight), "--warmup", warm, "--duration", dur, "--src-addrs", "8"]
    scenarios = [
        {"name": "msg64", "mode": "throughput", "args": tp(64, 10, 40),
         "title": "64 B, 10 conns × 40 in flight"},
        {"name": "msg1k", "mode": "throughput", "args": tp(1024, 100, 1),
         "title": "1 KiB, 100 conns × 1 in flight"},
        {"name": "msg64k", "mode": "throughput", "args": tp(65536, 10, 2),
         "title": "64 KiB, 10 conns × 2 in flight"},
        {"name": "idle", "mode": "idle",
         "args": ["--path", "/bench", "--conns", str(idle_conns), "--src-addrs", "40",
                  "--connect-concurrency", "200", "--hold", "1", "--open-timeout", "120"],
         "title": f"{idle_conns} idle proxied connections"},
        {"name": "handshake", "mode": "handshake",
         "args": ["--path", "/bench", "--conns", str(args.handshake_slots), "--src-addrs", "64",
                  "--warmup", warm,
                  "--duration", dur],
         "title": f"connect, upgrade through to the upstream, close; {args.handshake_slots} "
                  "at a time"},
        {"name": "slowreader", "mode": "slowreader",
         "args": ["--path", "/flood", "--rate", "1000000", "--duration", slow_s, "--sample",
                  "0.5", "--rss-limit-mib", "2048"],
         "title": f"one client reading 1 MB/s for {slow_s}s while the upstream floods"},
    ]
    figures = {
        "throughput": [("msgs/s", "msgs_per_s", "higher"), ("p50 round trip (µs)", "p50_us", "lower"),
                       ("p99 round trip (µs)", "p99_us", "lower"),
                       ("proxy CPU per message (µs)", "proxy_cpu_us_per_unit", "lower")],
        "idle": [("RSS per proxied connection (KiB)", "kib_per_conn", "lower")],
        "handshake": [("proxied handshakes/s", "handshakes_per_s", "higher"),
                      ("proxy CPU per handshake (µs)", "proxy_cpu_us_per_unit", "lower")],
        "slowreader": [("RSS growth, 2nd half (KiB)", "rss_growth_2nd_half_kib", "lower"),
                       ("peak RSS growth (KiB)", "rss_growth_kib", "lower")],
    }
    for s in scenarios:
        s["figures"] = figures[s["mode"]]
        # Generous, but bounded: a wedged run is stopped and reported, not waited for.
        s["timeout"] = 180
    only = [x for x in args.only.split(",") if x] if args.only else []
    return [s for s in scenarios if not only or s["name"] in only]


# Figures that may legitimately be negative.
SIGNED_FIGURES = {"rss_growth_2nd_half_kib"}


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def summarize(scenarios, proxies, raw):
    """One row per figure: medians per proxy, the median of the per-round ratios and their range.

    Ratios are taken round by round (the two proxies of one round ran back to back under the same
    conditions) and only then summarized, as FIELD-NOTES asks."""
    rows = []
    for s in scenarios:
        for label, key, better in s["figures"]:
            row = {"scenario": s["name"], "figure": f"{s['title']}: {label}", "key": key,
                   "better": better}
            per_proxy = {}
            for p in proxies:
                vals = [r.get(key) if r.get("ok") else None for r in raw[s["name"]][p]]
                per_proxy[p] = vals
                # Negative values are "not measured" sentinels, except for an RSS change,
                # which is negative when the proxy gave memory back.
                good = [v for v in vals
                        if v is not None and (v >= 0 or key in SIGNED_FIGURES)]
                row[p] = statistics.median(good) if good else None
                row[p + "_rounds"] = vals
            ratios = []
            if "nginx" in per_proxy and "wsgate" in per_proxy:
                for a, b in zip(per_proxy["nginx"], per_proxy["wsgate"]):
                    if a is not None and b is not None and a > 0 and b >= 0:
                        ratios.append(b / a)
            row["ratios"] = ratios
            row["ratio"] = statistics.median(ratios) if ratios else None
            rows.append(row)
    return rows


def markdown(rows, proxies, rounds):
    out = ["| figure | nginx | wsgate | ratio wsgate÷nginx | spread over rounds |",
           "|---|---|---|---|---|"]
    for r in rows:
        spread = "–"
        if r["ratios"]:
            spread = f"{min(r['ratios']):.2f}–{max(r['ratios']):.2f} ({len(r['ratios'])}/{rounds})"
        elif any(r.get(p + "_rounds") for p in proxies):
            ok = {p: sum(v is not None for v in r.get(p + "_rounds", [])) for p in proxies}
            spread = "no ratio (" + ", ".join(f"{p} ok {n}/{rounds}" for p, n in ok.items()) + ")"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "–"
        out.append(f"| {r['figure']} | {fmt(r.get('nginx'))} | {fmt(r.get('wsgate'))} | "
                   f"{ratio} | {spread} |")
    return "\n".join(out)


def notes(scenarios, proxies, raw, all_cores):
    """Failures and conditions that make a figure suspect, listed under the table."""
    out = []
    for s in scenarios:
        for p in proxies:
            for rnd, r in enumerate(raw[s["name"]][p]):
                where = f"{s['name']} / {p} / round {rnd + 1}"
                if not r.get("ok"):
                    out.append(f"- {where}: FAILED: {r.get('error')}")
                    continue
                if r.get("error") and not r.get("rss_limit_hit"):
                    out.append(f"- {where}: {r['error']}")
                busy = (r.get("load_cpu_util") or 0) + max(r.get("echo_cpu_util") or 0, 0)
                cpu, window = r.get("proxy_cpu_s"), r.get("duration_s")
                if not all_cores and busy > 0.9:
                    out.append(f"- {where}: core 1 was {busy:.0%} busy (load generator + echo): "
                               "the proxy may not have been the bottleneck")
                elif (not all_cores and cpu is not None and window and cpu >= 0 and
                      cpu < 0.8 * window and busy < 0.9):
                    out.append(f"- {where}: neither the proxy ({cpu / window:.0%} of its core) "
                               "nor core 1 was saturated: latency-bound, or other processes "
                               "took CPU time")
                if r.get("rss_limit_hit"):
                    out.append(f"- {where}: RSS passed the 2 GiB safety limit; run stopped early")
                if r.get("closed_by_peer"):
                    out.append(f"- {where}: the proxy closed the slow reader after "
                               f"{r.get('closed_at_s')}s (a slow-consumer policy)")
    return out


# The targets. Each: (text, scenario, key, "ratio" or "wsgate", comparison, bound).
TARGETS = [
    ("msgs/s, 64 B ≥ 1.0×", "msg64", "msgs_per_s", "ratio", ">=", 1.0),
    ("msgs/s, 1 KiB ≥ 1.0×", "msg1k", "msgs_per_s", "ratio", ">=", 1.0),
    ("msgs/s, 64 KiB ≥ 1.5×", "msg64k", "msgs_per_s", "ratio", ">=", 1.5),
    ("proxy CPU per message, 64 B ≤ 1.0×", "msg64", "proxy_cpu_us_per_unit", "ratio", "<=", 1.0),
    ("proxy CPU per message, 1 KiB ≤ 1.0×", "msg1k", "proxy_cpu_us_per_unit", "ratio", "<=", 1.0),
    ("proxy CPU per message, 64 KiB ≤ 1.0×", "msg64k", "proxy_cpu_us_per_unit", "ratio", "<=",
     1.0),
    ("p99 round trip, 64 B ≤ 1.2×", "msg64", "p99_us", "ratio", "<=", 1.2),
    ("p99 round trip, 1 KiB ≤ 1.2×", "msg1k", "p99_us", "ratio", "<=", 1.2),
    ("p99 round trip, 64 KiB ≤ 1.2×", "msg64k", "p99_us", "ratio", "<=", 1.2),
    ("idle memory per proxied connection ≤ 8 KiB", "idle", "kib_per_conn", "wsgate", "<=", 8.0),
    ("proxied handshakes/s ≥ 1.0×", "handshake", "handshakes_per_s", "ratio", ">=", 1.0),
    ("slow reader: RSS flat (≤ 1 MiB growth over the 2nd half)", "slowreader",
     "rss_growth_2nd_half_kib", "wsgate", "<=", 1024.0),
]


def check_targets(rows):
    """Which of the targets this run meets (median over rounds). Unmeasured ones are
    left out."""
    by_key = {(r["scenario"], r["key"]): r for r in rows}
    out = []
    for text, scenario, key, what, op, bound in TARGETS:
        row = by_key.get((scenario, key))
        if row is None:
            continue
        value = row["ratio"] if what == "ratio" else row.get("wsgate")
        met = None if value is None else (value >= bound if op == ">=" else value <= bound)
        out.append({"target": text, "value": value, "met": met})
    return out


def targets_markdown(targets):
    out = ["| target | this run | met |", "|---|---|---|"]
    for t in targets:
        met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
        out.append(f"| {t['target']} | {fmt(t['value'])} | {met} |")
    return "\n".join(out)


def tool_version(argv):
    try:
        res = subprocess.run(argv, capture_output=True, timeout=10)
        return (res.stdout + res.stderr).decode(errors="replace").strip().splitlines()[0]
    except Exception:
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--workdir", required=True, help="scratch directory (run.sh makes one)")
    ap.add_argument("--quick", action="store_true", help="short smoke run (seconds per figure)")
    ap.add_argument("--all-cores", action="store_true",
                    help="wsgate with 2 workers (nginx with 2 workers), nothing pinned")
    ap.add_argument("--rounds", type=int, default=None,
                    help="alternating rounds (default 3, or 1 with --quick)")
    ap.add_argument("--only", default="", help="comma-separated scenarios: msg64,msg1k,msg64k,"
                    "idle,handshake,slowreader")
    ap.add_argument("--proxies", default="nginx,wsgate")
    ap.add_argument("--idle-conns", type=int, default=0)
    ap.add_argument("--handshake-slots", type=int, default=32,
                    help="concurrent connect/upgrade/close loops in the handshake scenario")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    if not 1 <= args.rounds <= 20:
        ap.error("--rounds must be 1..20")
    if not set(args.proxies.split(",")) <= set(PROXIES):
        ap.error("--proxies takes nginx, wsgate or both")
    if not 1 <= args.handshake_slots <= 1000:
        ap.error("--handshake-slots must be 1..1000")
    if args.idle_conns and not 1 <= args.idle_conns <= 9000:
        ap.error("--idle-conns must be 1..9000 (two sockets per proxied connection, 20k fds)")

    # Both proxies and the tools inherit this: 8,000 proxied connections need 16,000 sockets.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    bench = Bench(args)
    for path, what in ((bench.wsload, "wsload"), (bench.wsecho, "wsecho"), (args.nginx, "nginx")):
        if not os.access(path, os.X_OK):
            sys.exit(f"bench: {what} not found at {path}")
    if "wsgate" in args.proxies and not os.access(bench.wsgate, os.X_OK):
        sys.exit(f"bench: wsgate not found at {bench.wsgate} (build it, or pass --proxies nginx)")
    if not args.all_cores and os.cpu_count() < 2:
        sys.exit("bench: pinning needs 2 cores; use --all-cores")

    def on_signal(signum, frame):
        raise SystemExit(f"bench: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        scenarios, proxies, raw, load_before, elapsed = bench.run()
    finally:
        bench.procs.stop_all()

    rows = summarize(scenarios, proxies, raw)
    table = markdown(rows, proxies, args.rounds)
    note_lines = notes(scenarios, proxies, raw, args.all_cores)
    if "wsgate" in proxies and any(s["name"] == "slowreader" for s in scenarios):
        note_lines.append("- slow reader: wsgate's /flood route " + (
            "has send_queue_bytes: 1048576 with slow_consumer_policy drop_oldest" if bench.send_queue_limit else
            "has no send-queue limit (this wsgate refuses send_queue_bytes as not enforced yet)"))
    mode = "all cores: 2 workers each, unpinned" if args.all_cores else \
        "1 worker each, proxy pinned to core 0, load generator and echo on core 1"
    header = (f"wsgate vs nginx, {mode}; {args.rounds} alternating round(s)"
              f"{', quick' if args.quick else ''}; load average before "
              f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; {elapsed:.0f}s")
    print()
    print(header)
    print()
    print(table)
    targets = check_targets(rows) if "wsgate" in proxies and "nginx" in proxies else []
    if targets:
        print()
        print(targets_markdown(targets))
    if note_lines:
        print()
        print("Notes:")
        print("\n".join(note_lines))

    os.makedirs(args.results, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    suffix = ("-quick" if args.quick else "") + ("-allcores" if args.all_cores else "")
    out_path = os.path.join(args.results, f"bench-{stamp}{suffix}.json")
    git_rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True).stdout.decode().strip()
    doc = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(["bench/run.sh"] + sys.argv[1:]),
        "mode": mode, "quick": args.quick, "rounds": args.rounds,
        "machine": {"cpus": os.cpu_count(), "loadavg_before": load_before,
                    "loadavg_after": os.getloadavg(), "kernel": os.uname().release},
        "versions": {"nginx": tool_version([args.nginx, "-v"]), "wsgate_git": git_rev},
        "elapsed_s": round(elapsed, 1),
        "wsgate_send_queue_bytes": 1048576 if bench.send_queue_limit else None,
        "scenarios": [{k: s[k] for k in ("name", "mode", "title", "args")} for s in scenarios],
        "figures": rows, "targets": targets, "notes": note_lines, "raw": raw, "table_markdown": table,
    }
    with open(out_path, "w") as f:
        json.dump(doc, f, indent=1)
    print()
    print(f"JSON: {os.path.relpath(out_path, ROOT)}")
    failed = any(not r.get("ok") for s in raw.values() for runs in s.values() for r in runs)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
