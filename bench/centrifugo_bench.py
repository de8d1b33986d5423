#!/usr/bin/python3
"""Fan-out side by side with Centrifugo: wsgate's room kind against Centrifugo v6 channels.

Four systems, each a fresh process per measurement, on free loopback ports:
  wsgate/memory       wsgate, one worker, its in-memory bus (no REDIS_URL), route /room/{client_id}
  wsgate/redis        the same with REDIS_URL (the bus is a real redis-server started here)
  centrifugo/memory   Centrifugo (.tools/bin/centrifugo, .ci/install-centrifugo.sh), memory engine
  centrifugo/redis    the same with its Redis engine on a real redis-server started here
Centrifugo runs with `client.insecure: true` (no JWT; anonymous connect, subscribe and publish).
The load tool is bench/fanout_load (--target gateway or centrifugo); in both systems member 0 of
the room publishes through its own WebSocket (wsgate: a text frame; Centrifugo: a client publish
command), so both take the message from a member's socket and fan it out to the 999 others.

Scenarios (one round: every scenario on every system, the order of the systems flipping round by
round):
  room1k   1,000 subscribers, one publisher: a fixed offered rate (--rate msgs/s, open loop), the
           time until the LAST member has each message (p50/p99); then saturation (4 messages
           in flight): deliveries/s (member x message).
  idle10k  10,000 idle subscribers (fanout_load --mode hold): server RSS growth / subscribers.
  sweep    the one-at-a-time last-member latency at room sizes 10 -> 1,000 (the curve, as a PNG
           into bench/results/<date>/fanout_vs_centrifugo.png through matplotlib).
Pinning as bench/driver.py: the server on core 0 (taskset -c 0; Go sizes GOMAXPROCS from the
affinity mask, so Centrifugo runs one P), the load tool and redis-server on core 1.

--smoke is the ctest bench.centrifugo_smoke: 10 subscribers and a few messages on all four
systems; it fails unless every subscriber got every message exactly once, every publish was
answered, and the Redis runs really went through Redis. No timing is asserted.

Standard library only (/usr/bin/python3) apart from matplotlib for the plot.
"""

import argparse
import datetime
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from driver import Processes, free_port, log, port_accepts, tail, wait_until  # noqa: E402
from fanout_bench import WSGATE_CONFIG, ROOM_CHANNEL, http_status, redis_ping  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = (("wsgate", "memory"), ("wsgate", "redis"), ("centrifugo", "memory"),
           ("centrifugo", "redis"))
CF_CHANNEL = "bench"  # a channel without namespace: the top-level channel options apply
TOOL_BOUND = 0.95


def centrifugo_config(port, redis_port):
    """Centrifugo v6 keys (internal/config/config.go, internal/configtypes of v6.9.1). A wrong key
    is ignored silently, so the smoke checks the effects: insecure connects are accepted, and
    with the Redis engine the publications go through redis-server."""
    cfg = {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "client": {"insecure": True},
        "health": {"enabled": True},
        "usage_stats": {"disabled": True},
        "engine": {"type": "memory"},
    }
    if redis_port:
        cfg["engine"] = {"type": "redis",
                         "redis": {"address": [f"redis://127.0.0.1:{redis_port}"]}}
    return cfg


def redis_commands(port):
    """Calls per command from INFO commandstats, {name: calls}."""
    res = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port), "INFO", "commandstats"],
                         capture_output=True, timeout=5)
    out = {}
    for line in res.stdout.decode(errors="replace").splitlines():
        if line.startswith("cmdstat_") and ":calls=" in line:
            name, rest = line[len("cmdstat_"):].split(":", 1)
            out[name] = int(rest.split(",")[0].split("=")[1])
    return out


class Bench:
    def __init__(self, args, workdir):
        self.args = args
        self.workdir = workdir
        self.procs = Processes(workdir)
        self.count = 0

    def pinned(self, core, argv):
        return ["taskset", "-c", str(core)] + argv

    def start_redis(self):
        self.count += 1
        port = free_port()
        proc = self.procs.start(
            self.pinned(1, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save",
                            "", "--appendonly", "no", "--protected-mode", "no", "--maxclients",
                            "15000", "--loglevel", "warning"]),
            f"redis-{self.count}", stdout=subprocess.DEVNULL)
        try:
            wait_until(lambda: proc.poll() is not None or redis_ping(port), 10, "redis-server")
            if proc.poll() is not None:
                raise RuntimeError("redis-server exited: " + tail(proc.bench_log))
        except Exception:
            self.procs.stop(proc)
            raise
        return proc, port

    def start_wsgate(self, redis_port):
        self.count += 1
        name = f"wsgate-{self.count}"
        cfg = os.path.join(self.workdir, f"{name}.yaml")
        with open(cfg, "w") as f:
            f.write(WSGATE_CONFIG)
        port, admin, grpc = free_port(), free_port(), free_port()
        argv = [self.args.wsgate, "--config", cfg, "--port", str(port), "--admin-port", str(admin),
                "--grpc-port", str(grpc), "--listen", "127.0.0.1", "--grpc-listen", "127.0.0.1",
                "--workers", "1", "--log-level", "warn", "--shutdown-grace", "1",
                # The default cap comes from the open-files limit and assumes two descriptors per
                # connection (9,488 at 20,000); a room member holds one.
                "--max-connections", str(self.args.idle + 1000)]
        env = {k: v for k, v in os.environ.items()
               if k not in ("HOST", "PORT", "WSGATE_LOG_LEVEL", "REDIS_URL",
                            "WS_PING_INTERVAL_SECS", "WS_PING_TIMEOUT_SECS")}
        if redis_port:
            env["REDIS_URL"] = f"redis://127.0.0.1:{redis_port}"
        proc = self.procs.start(self.pinned(0, argv), name, stdout=subprocess.DEVNULL, env=env)

        def ready():
            if proc.poll() is not None:
                return True
            return http_status(admin, "/ready") == 200 and http_status(port, "/health") == 200

        try:
            wait_until(ready, 20, "wsgate /ready and /health")
            if proc.poll() is not None:
                raise RuntimeError(f"wsgate exited with {proc.returncode}: " + tail(proc.bench_log))
        except Exception:
            self.procs.stop(proc)
            raise
        return proc, port

    def start_centrifugo(self, redis_port):
        self.count += 1
        name = f"centrifugo-{self.count}"
        port = free_port()
        cfg = os.path.join(self.workdir, f"{name}.json")
        with open(cfg, "w") as f:
            json.dump(centrifugo_config(port, redis_port), f, indent=1)
        # Only the config file speaks: no CENTRIFUGO_* variables from the caller's environment.
        env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRIFUGO_")}
        proc = self.procs.start(self.pinned(0, [self.args.centrifugo, "--config", cfg]), name,
                                stdout=subprocess.DEVNULL, env=env)
        try:
            wait_until(lambda: proc.poll() is not None or http_status(port, "/health") == 200, 20,
                       "centrifugo /health")
            if proc.poll() is not None:
                raise RuntimeError(f"centrifugo exited with {proc.returncode}: "
                                   + tail(proc.bench_log))
        except Exception:
            self.procs.stop(proc)
            raise
        return proc, port

    def run_tool(self, label, argv, timeout):
        full = self.pinned(1, [self.args.fanout_load, "--label", label] + argv)
        log(f"{label}: {' '.join(full[3:])}")
        try:
            res = subprocess.run(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"label": label, "ok": False, "exactly_once": False,
                    "error": f"fanout_load timed out after {timeout}s"}
        lines = [l for l in res.stdout.decode(errors="replace").splitlines() if l.startswith("{")]
        if not lines:
            return {"label": label, "ok": False, "exactly_once": False,
                    "error": f"no result (exit {res.returncode}): "
                             + res.stderr.decode(errors="replace")[-500:]}
        out = json.loads(lines[-1])
        out["argv"] = full
        if not out.get("ok"):
            log(f"{label}: FAILED: {out.get('error')}")
        return out

    def one(self, kind, system, bus, tool_args, timeout=180):
        """One measurement on a fresh server (and a fresh redis-server for the Redis bus)."""
        redis_proc, redis_port = self.start_redis() if bus == "redis" else (None, 0)
        server = None
        try:
            if system == "wsgate":
                server, port = self.start_wsgate(redis_port)
                argv = ["--target", "gateway", "--path-prefix", "/room/",
                        "--room-channel", ROOM_CHANNEL]
            else:
                server, port = self.start_centrifugo(redis_port)
                argv = ["--target", "centrifugo", "--path-prefix", "/connection/websocket",
                        "--room-channel", CF_CHANNEL]
            argv += ["--port", str(port), "--gateway-pid", str(server.pid)] + tool_args
            res = self.run_tool(f"{kind}/{system}/{bus}", argv, timeout)
            res.update(system=system, bus=bus, kind=kind)
            if redis_port:
                cmds = redis_commands(redis_port)
                res["redis_commands"] = cmds
                # wsgate PUBLISHes; Centrifugo publishes with a Lua script (EVALSHA / FCALL).
                res["redis_publish_calls"] = sum(v for k, v in cmds.items()
                                                 if k in ("publish", "evalsha", "eval", "fcall",
                                                          "spublish"))
            if server.poll() is not None:
                res["ok"] = False
                res["error"] = f"{system} exited with {server.returncode}: " + tail(server.bench_log)
            return res
        finally:
            if server is not None:
                self.procs.stop(server)
            if redis_proc is not None:
                self.procs.stop(redis_proc)


def plan(args):
    """(kind, tool arguments, timeout) for every measurement of one round on one system."""
    a = args
    out = []
    if "room1k" in a.only:
        out.append(("room1k", ["--mode", "room", "--sessions", str(a.room), "--repeats", "0",
                               "--room-rate", str(a.rate), "--inflight", str(a.inflight),
                               "--warmup-s", str(a.warmup_s), "--duration-s", str(a.duration_s),
                               "--drain-s", "5", "--open-timeout-s", "60"], 180))
    if "idle10k" in a.only:
        out.append(("idle10k", ["--mode", "hold", "--sessions", str(a.idle), "--id-prefix", "m",
                                "--hold-s", "1", "--src-addrs", "8", "--open-timeout-s", "120"],
                    240))
    if "sweep" in a.only:
        for n in a.sweep:
            out.append((f"sweep{n}", ["--mode", "room", "--sessions", str(n), "--repeats",
                                      str(a.repeats), "--no-saturation", "--drain-s", "5",
                                      "--open-timeout-s", "60"], 120))
    return out


def phase(res, name):
    for ph in res.get("phases", []) if res else []:
        if ph["name"] == name:
            return ph
    return None


def fmt(v):
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def figures(args):
    """(key, title, getter, higher_is_better, is_target) of the compared figures: the targets are
    the issue's (last member p50/p99 at a fixed rate, deliveries/s at saturation, RSS per idle
    subscriber); the delivered rate at the fixed rate (it should equal the offered one) and the
    CPU per delivery are shown beside them."""
    def ph(name, key):
        return lambda r: (phase(r, name) or {}).get(key)

    def rss_per_conn(r):
        before, after = r.get("gateway_rss_before_open_kib"), r.get("gateway_rss_after_open_kib")
        if before is None or after is None or before < 0 or after < 0:
            return None
        return (after - before) / r["sessions"]

    n = args.room
    return [
        ("room1k", f"room of {n:,}, {args.rate:g} msgs/s: last member p50 (µs)",
         ph("fixed", "last_member_p50_us"), False, True),
        ("room1k", f"room of {n:,}, {args.rate:g} msgs/s: last member p99 (µs)",
         ph("fixed", "last_member_p99_us"), False, True),
        ("room1k", f"room of {n:,}, {args.rate:g} msgs/s: deliveries/s",
         ph("fixed", "delivered_per_s"), True, False),
        ("room1k", f"room of {n:,}, saturation ({args.inflight} in flight): deliveries/s",
         ph("saturation", "delivered_per_s"), True, True),
        ("room1k", f"room of {n:,}, saturation: server CPU ms per 1k deliveries",
         lambda r: (phase(r, "saturation") or {}).get("gateway_cpu_s_per_1k", 0) * 1000 or None,
         False, False),
        ("idle10k", f"{args.idle:,} idle subscribers: server RSS per subscriber (KiB)",
         rss_per_conn, False, True),
    ]


def tool_busy(r, name):
    p = phase(r, name)
    if not p or not p.get("window_s"):
        return None
    return p["tool_cpu_s"] / p["window_s"]


def summarize(args, results):
    """results[(kind, system, bus)] = [one result per round]. Returns the markdown and the target
    rows."""
    def good(r):
        return r and r.get("ok") and r.get("exactly_once")

    lines = ["| figure | wsgate memory | wsgate Redis | Centrifugo memory | Centrifugo Redis "
             "| ratio memory (wsgate ÷ Centrifugo) | ratio Redis | target met (memory / Redis) |",
             "|---|---|---|---|---|---|---|---|"]
    targets = []
    for kind, title, get, higher, is_target in figures(args):
        vals, ratio = {}, {}
        for system, bus in SYSTEMS:
            runs = results.get((kind, system, bus), [])
            v = [get(r) for r in runs if good(r) and get(r) is not None]
            vals[(system, bus)] = statistics.median(v) if v else None
        for bus in ("memory", "redis"):
            w = results.get((kind, "wsgate", bus), [])
            c = results.get((kind, "centrifugo", bus), [])
            rs = []
            for rw, rc in zip(w, c):  # round by round: the two ran in the same round
                if good(rw) and good(rc) and get(rw) is not None and get(rc):
                    rs.append(get(rw) / get(rc))
            ratio[bus] = statistics.median(rs) if rs else None
        met = []
        for bus in ("memory", "redis"):
            r = ratio[bus]
            if r is None or not is_target:
                met.append("–")
                continue
            # "wsgate at least as good": ≥ 1.0× for rates, ≤ 1.0× for latency and memory.
            ok = r >= 1.0 if higher else r <= 1.0
            met.append("yes" if ok else "no")
            targets.append({"figure": title, "bus": bus, "ratio": r, "met": ok,
                            "higher_is_better": higher})
        if all(v is None for v in vals.values()):
            continue  # a scenario this run left out
        lines.append(f"| {title} | " + " | ".join(fmt(vals[s]) for s in SYSTEMS) + " | "
                     + " | ".join(f"{ratio[b]:.2f}" if ratio[b] is not None else "–"
                                  for b in ("memory", "redis"))
                     + f" | {met[0]} / {met[1]} |")
    return "\n".join(lines), targets


def notes(raw):
    out = []
    for r in raw:
        state = "ok" if r.get("ok") else "FAILED"
        once = "exactly once" if r.get("exactly_once") else "NOT exactly once"
        busy = [f"{n} {tool_busy(r, n):.0%}" for n in ("fixed", "saturation", "one_at_a_time")
                if tool_busy(r, n) is not None]
        bound = any(tool_busy(r, n) is not None and tool_busy(r, n) >= TOOL_BOUND
                    for n in ("fixed", "saturation", "one_at_a_time"))
        # How much of its core the server got: on a shared machine a saturated server well
        # under 100 % was held back by other work on core 0, not by its own cost.
        sat = phase(r, "saturation")
        server = (f"; server used {sat['gateway_cpu_s'] / sat['window_s']:.0%} of core 0 at "
                  f"saturation" if sat and sat.get("window_s") else "")
        out.append(f"- round {r.get('round')}, {r.get('label')}: {state}, {once} (published "
                   f"{r.get('published_total')}, delivered {r.get('delivered_total')}, missing "
                   f"{r.get('missing')}, duplicates {r.get('duplicates')}, gaps {r.get('gaps')}"
                   + (f", publish replies {r.get('publish_replies')}"
                      if r.get("system") == "centrifugo" and r.get("mode") == "room" else "")
                   + (f", Redis publish calls {r.get('redis_publish_calls')}"
                      if "redis_publish_calls" in r else "")
                   + (f"; fanout_load's core busy: {', '.join(busy)}" if busy else "")
                   + ("; BOUNDED BY THE LOAD TOOL" if bound else "") + server + ")"
                   + (f"; error: {r.get('error')}" if r.get("error") else ""))
    return out


def check_smoke(raw):
    """What the smoke asserts beyond exactly once: the Redis runs went through Redis."""
    bad = []
    for r in raw:
        if not r.get("ok") or not r.get("exactly_once"):
            bad.append(f"{r.get('label')}: ok {r.get('ok')}, exactly once "
                       f"{r.get('exactly_once')}: missing {r.get('missing')}, duplicates "
                       f"{r.get('duplicates')}, gaps {r.get('gaps')}, publish replies "
                       f"{r.get('publish_replies')}, own copies {r.get('self_answers')} of "
                       f"{r.get('published_total')} ({r.get('error')})")
        elif r.get("bus") == "redis" and r.get("mode") == "room" and \
                (r.get("redis_publish_calls") or 0) < r.get("published_total", 1):
            bad.append(f"{r.get('label')}: {r.get('published_total')} messages but only "
                       f"{r.get('redis_publish_calls')} publishes reached redis-server "
                       f"({r.get('redis_commands')})")
    return bad


def plot(sweep, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {("wsgate", "memory"): "tab:blue", ("wsgate", "redis"): "tab:cyan",
               ("centrifugo", "memory"): "tab:red", ("centrifugo", "redis"): "tab:orange"}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, q in zip(axes, ("p50", "p99")):
        for system, bus in SYSTEMS:
            pts = sweep.get(f"{system}/{bus}", [])
            if not pts:
                continue
            xs = [p["n"] for p in pts]
            ys = [p[f"last_member_{q}_us"] for p in pts]
            ax.plot(xs, ys, "-", color=colours[(system, bus)], label=f"{system} ({bus})")
            for p in pts:
                ax.plot(p["n"], p[f"last_member_{q}_us"], "o", color=colours[(system, bus)],
                        fillstyle="none" if p.get("tool_bound") else "full")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("room size (subscribers)")
        ax.set_ylabel(f"last member received, {q} (µs)")
        ax.set_title(f"Fan-out latency against room size, {q}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, title="one message at a time; hollow: tool-bound", title_fontsize=7)
    fig.tight_layout()
    path = os.path.join(out_dir, "fanout_vs_centrifugo.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--wsgate", default=None, help="default: <build>/controlplane/main/wsgate")
    ap.add_argument("--fanout-load", default=None, help="default: <build>/bench/fanout_load")
    ap.add_argument("--centrifugo", default=os.path.join(ROOT, ".tools", "bin", "centrifugo"),
                    help="default: .tools/bin/centrifugo (.ci/install-centrifugo.sh)")
    ap.add_argument("--only", default="room1k,idle10k,sweep",
                    help="comma-separated: room1k,idle10k,sweep")
    ap.add_argument("--room", type=int, default=1000, help="room1k: subscribers")
    ap.add_argument("--rate", type=float, default=10,
                    help="room1k: fixed offered rate, messages/s (each to every member; 10/s is "
                    "10,000 deliveries/s, below either system's saturation here)")
    ap.add_argument("--inflight", type=int, default=4,
                    help="room1k saturation: messages not yet received by every member")
    ap.add_argument("--idle", type=int, default=10000, help="idle10k: subscribers")
    ap.add_argument("--sweep", default="10,30,100,300,1000", help="sweep: room sizes")
    ap.add_argument("--repeats", type=int, default=200, help="sweep: messages one at a time")
    ap.add_argument("--warmup-s", type=float, default=1)
    ap.add_argument("--duration-s", type=float, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 round, short windows, fewer points")
    ap.add_argument("--smoke", action="store_true",
                    help="ctest: 10 subscribers, a few messages, fail unless exactly once")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    args = ap.parse_args()
    if args.smoke:
        args.only, args.room, args.rate, args.inflight = "room1k", 10, 50, 2
        args.warmup_s, args.duration_s, args.rounds = 0.1, 0.2, 1
    elif args.quick:
        args.sweep, args.repeats, args.rounds = "10,100,1000", 50, 1
        args.warmup_s, args.duration_s = 0.5, 2
    args.only = set(args.only.split(","))
    unknown = args.only - {"room1k", "idle10k", "sweep"}
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}")
    args.sweep = [int(x) for x in args.sweep.split(",") if x]
    if any(n < 2 or n > 10000 for n in args.sweep):
        ap.error("--sweep sizes must be 2..10000")
    if not 1 <= args.rounds <= 10:
        ap.error("--rounds must be 1..10")
    args.wsgate = args.wsgate or os.path.join(args.build, "controlplane", "main", "wsgate")
    args.fanout_load = args.fanout_load or os.path.join(args.build, "bench", "fanout_load")
    for path in (args.wsgate, args.fanout_load, args.centrifugo):
        if not os.access(path, os.X_OK):
            sys.exit(f"centrifugo_bench: {path} not found (build it, or run "
                     ".ci/install-centrifugo.sh for centrifugo)")
    if os.cpu_count() < 2:
        sys.exit("centrifugo_bench: pinning needs 2 cores")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if "idle10k" in args.only and hard < args.idle + 1000:
        sys.exit(f"centrifugo_bench: the open-files hard limit is {hard}; {args.idle} "
                 "subscribers need more")

    workdir = tempfile.mkdtemp(prefix="cfbench.")
    bench = Bench(args, workdir)

    def on_signal(signum, frame):
        raise SystemExit(f"centrifugo_bench: stopped by signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    load_before = os.getloadavg()
    started = time.monotonic()
    results, raw = {}, []
    try:
        for rnd in range(args.rounds):
            order = list(SYSTEMS) if rnd % 2 == 0 else list(reversed(SYSTEMS))
            for kind, tool_args, timeout in plan(args):
                for system, bus in order:
                    try:
                        res = bench.one(kind, system, bus, tool_args, timeout)
                    except RuntimeError as e:
                        res = {"label": f"{kind}/{system}/{bus}", "ok": False,
                               "exactly_once": False, "error": str(e), "system": system,
                               "bus": bus, "kind": kind}
                    res["round"] = rnd + 1
                    results.setdefault((kind, system, bus), []).append(res)
                    raw.append(res)
    finally:
        bench.procs.stop_all()
    elapsed = time.monotonic() - started
    load_after = os.getloadavg()

    header = (f"fan-out vs Centrifugo: {args.rounds} round(s); server pinned to core 0, "
              f"fanout_load and redis-server to core 1; 64 B payloads; load average before "
              f"{load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, after "
              f"{load_after[0]:.2f}; {elapsed:.0f} s"
              + (" (smoke)" if args.smoke else " (quick)" if args.quick else ""))
    print()
    print(header)
    print()
    tbl, targets = summarize(args, results)
    print(tbl)
    note_lines = notes(raw)
    print()
    print("\n".join(note_lines))

    sweep = {}
    for n in args.sweep if "sweep" in args.only else []:
        for system, bus in SYSTEMS:
            runs = [r for r in results.get((f"sweep{n}", system, bus), [])
                    if r.get("ok") and r.get("exactly_once")]
            phs = [phase(r, "one_at_a_time") for r in runs]
            phs = [p for p in phs if p]
            if not phs:
                continue
            sweep.setdefault(f"{system}/{bus}", []).append({
                "n": n,
                "last_member_p50_us": statistics.median(p["last_member_p50_us"] for p in phs),
                "last_member_p99_us": statistics.median(p["last_member_p99_us"] for p in phs),
                "tool_bound": any((tool_busy(r, "one_at_a_time") or 0) >= TOOL_BOUND
                                  for r in runs)})
    if sweep:
        print()
        print("| room size | " + " | ".join(f"{s} {b}: last member p50 / p99 (µs)"
                                             for s, b in SYSTEMS) + " |")
        print("|---|" + "---|" * len(SYSTEMS))
        for n in args.sweep:
            cells = []
            for system, bus in SYSTEMS:
                p = next((p for p in sweep.get(f"{system}/{bus}", []) if p["n"] == n), None)
                cells.append(f"{fmt(p['last_member_p50_us'])} / {fmt(p['last_member_p99_us'])}"
                             if p else "–")
            print(f"| {n:,} | " + " | ".join(cells) + " |")

    if targets:
        met = sum(t["met"] for t in targets)
        print()
        print(f"targets (wsgate at least as good as Centrifugo, ≥ 1.0×): {met} of {len(targets)} met")

    failed = [r for r in raw if not r.get("ok") or not r.get("exactly_once")]
    if args.smoke:
        bad = check_smoke(raw)
        for b in bad:
            print(f"centrifugo_bench: smoke: {b}", file=sys.stderr)
        if bad:
            print(f"process logs kept in {workdir}", file=sys.stderr)
            return 1
        import shutil
        shutil.rmtree(workdir, ignore_errors=True)
        return 0

    day = datetime.date.today().isoformat() + ("-quick" if args.quick else "")
    out_dir = os.path.join(args.results, day)
    os.makedirs(out_dir, exist_ok=True)
    if sweep:
        try:
            path = plot(sweep, out_dir)
            print(f"\ncentrifugo_bench: wrote {os.path.relpath(path, ROOT)}")
        except ImportError as e:
            print(f"centrifugo_bench: no plot ({e}); install python3-matplotlib", file=sys.stderr)
            failed.append({"error": "no matplotlib"})
    git_rev = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True).stdout.decode().strip()
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    jpath = os.path.join(args.results, f"centrifugo-{stamp}.json")
    with open(jpath, "w") as f:
        json.dump({"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
                   "command": " ".join(sys.argv), "header": header, "wsgate_git": git_rev,
                   "loadavg_before": load_before, "loadavg_after": load_after,
                   "table_markdown": tbl, "targets": targets, "sweep": sweep,
                   "notes": note_lines, "raw": raw}, f, indent=1)
    print(f"JSON: {os.path.relpath(jpath, ROOT)}")
    if failed:
        print(f"\ncentrifugo_bench: {len(failed)} run(s) failed or were not exactly once; "
              f"process logs kept in {workdir}", file=sys.stderr)
        return 1
    import shutil
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
