#!/usr/bin/python3
"""The curves of `make bench`: how cost grows with the work, wsgate beside nginx, as PNG plots.

  bench/curves.py --build build --workdir DIR [--quick]     measure, then plot
  bench/curves.py --plot-only bench/results/<date>/curves.json

Measured one proxy after the other, with driver.py's set-up (one worker each, the proxy pinned
to core 0, the load generator and the echo upstream on core 1, both proxies in front of the same
wsecho):
  - 64 B messages, one in flight per connection, at 10 -> 10,000 connections: msgs/s and p99;
  - the round-trip distribution (CDF) at 64 B (10 conns x 40 in flight) and 1 KiB (100 x 1);
  - RSS per proxied connection at 1,000 -> 50,000 idle connections.
Writes curves.json and four PNGs into bench/results/<date>/ (throughput_vs_conns.png,
p99_vs_conns.png, latency_cdf.png, rss_vs_idle.png).

A point where the load generator's own core was busy (load_cpu_util >= 0.95 in wsload's JSON) is
bounded by the tool rather than by the proxy: the plots draw it hollow, and the JSON keeps the
figure.

Fan-out against Centrifugo (room size 10 -> 1,000) is drawn by bench/centrifugo_bench.py,
which `make bench` runs after this script.
"""

import argparse
import datetime
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import driver  # noqa: E402  (the same processes, pinning and wsgate/nginx configs)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROXIES = ("nginx", "wsgate")
TOOL_BOUND = 0.95


def sweep_points(quick):
    if quick:
        return [10, 100, 1000], [1000, 5000]
    return [10, 30, 100, 300, 1000, 3000, 10000], [1000, 5000, 10000, 25000, 50000]


def throughput_scenario(conns, size, inflight, quick, name):
    warm, dur = ("0.3", "1") if quick else ("1", "4")
    return {"name": name, "mode": "throughput", "timeout": 240,
            "args": ["--path", "/bench", "--size", str(size), "--conns", str(conns),
                     "--inflight", str(inflight), "--warmup", warm, "--duration", dur,
                     "--src-addrs", "8", "--connect-concurrency", "200", "--open-timeout", "120"],
            "figures": [("msgs/s", "msgs_per_s", "higher")]}


def idle_scenario(conns):
    return {"name": f"idle{conns}", "mode": "idle", "timeout": 300,
            "args": ["--path", "/bench", "--conns", str(conns), "--src-addrs", "40",
                     "--connect-concurrency", "200", "--hold", "1", "--open-timeout", "240"],
            "figures": [("KiB per connection", "kib_per_conn", "lower")]}


def raise_fd_limit(want):
    """50,000 idle proxied connections hold 100,000 sockets in the proxy: root may raise the
    hard limit up to fs.nr_open. Returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        with open("/proc/sys/fs/nr_open") as f:
            nr_open = int(f.read())
    except OSError:
        nr_open = hard
    target = min(max(want, hard), nr_open)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def measure(args):
    conns_points, idle_points = sweep_points(args.quick)
    fd_limit = raise_fd_limit(2 * max(idle_points) + 20000)
    # Each idle connection costs the proxy two descriptors and the tool and the echo one each.
    idle_points = [n for n in idle_points if 2 * n + 1000 <= fd_limit]
    bench = driver.Bench(args)
    bench.fd_limit = fd_limit
    bench.start_echo()
    data = {"conns": {p: [] for p in PROXIES}, "cdf": {p: {} for p in PROXIES},
            "idle": {p: [] for p in PROXIES}, "fd_limit": fd_limit}
    try:
        for proxy in PROXIES:
            for n in conns_points:
                r = bench.measure(throughput_scenario(n, 64, 1, args.quick, f"conns{n}"), proxy, 0)
                data["conns"][proxy].append({"conns": n, **r})
            for name, size, conns, inflight in (("64 B", 64, 10, 40), ("1 KiB", 1024, 100, 1)):
                r = bench.measure(throughput_scenario(conns, size, inflight, args.quick,
                                                      f"cdf{size}"), proxy, 0)
                data["cdf"][proxy][name] = r
            for n in idle_points:
                r = bench.measure(idle_scenario(n), proxy, 0)
                data["idle"][proxy].append({"conns": n, **r})
    finally:
        bench.procs.stop_all()
    return data


def tool_bound(r):
    return (r.get("load_cpu_util") or 0) >= TOOL_BOUND


def plot(data, out_dir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"nginx": "tab:green", "wsgate": "tab:blue"}
    written = []

    def series(proxy, key, section):
        pts = [r for r in data[section][proxy] if r.get("ok") and r.get(key) is not None]
        return pts

    def line_plot(section, key, ylabel, title, fname, logy=False):
        fig, ax = plt.subplots(figsize=(7, 4.2))
        for proxy in PROXIES:
            pts = series(proxy, key, section)
            if not pts:
                continue
            xs, ys = [p["conns"] for p in pts], [p[key] for p in pts]
            ax.plot(xs, ys, "-", color=colours[proxy], label=proxy)
            for p in pts:
                ax.plot(p["conns"], p[key], "o", color=colours[proxy],
                        fillstyle="none" if tool_bound(p) else "full")
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel("connections")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(title="hollow: load generator's core saturated", fontsize=8, title_fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, fname)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    line_plot("conns", "msgs_per_s", "messages/s (64 B, 1 in flight per connection)",
              "Throughput against connections", "throughput_vs_conns.png")
    line_plot("conns", "p99_us", "p99 round trip (µs)", "p99 latency against connections",
              "p99_vs_conns.png", logy=True)
    line_plot("idle", "kib_per_conn", "RSS per proxied connection (KiB)",
              "Memory against idle connections", "rss_vs_idle.png")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for ax, name in zip(axes, ("64 B", "1 KiB")):
        for proxy in PROXIES:
            r = data["cdf"][proxy].get(name) or {}
            cdf = r.get("cdf_us") if r.get("ok") else None
            if not cdf:
                continue
            ax.plot([us for _, us in cdf], [q for q, _ in cdf], "-o", markersize=3,
                    color=colours[proxy], label=proxy)
        ax.set_xscale("log")
        ax.set_xlabel("round trip (µs)")
        ax.set_ylabel("fraction of messages")
        ax.set_title(f"Latency CDF, {name}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = os.path.join(out_dir, "latency_cdf.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--workdir", help="scratch directory (run.sh makes one)")
    ap.add_argument("--quick", action="store_true", help="fewer points, seconds per point")
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--results", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--plot-only", metavar="CURVES_JSON", help="plot an earlier run again")
    args = ap.parse_args()
    args.all_cores = False

    if args.plot_only:
        with open(args.plot_only) as f:
            data = json.load(f)
        out_dir = os.path.dirname(os.path.abspath(args.plot_only))
    else:
        if not args.workdir:
            ap.error("--workdir is required to measure")
        if os.cpu_count() < 2:
            sys.exit("curves: pinning needs 2 cores")
        data = measure(args)
        data["date"] = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        data["quick"] = args.quick
        out_dir = os.path.join(args.results, datetime.date.today().isoformat()
                               + ("-quick" if args.quick else ""))
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "curves.json"), "w") as f:
            json.dump(data, f, indent=1)
    for path in plot(data, out_dir):
        print(f"curves: wrote {os.path.relpath(path, ROOT)}")
    failed = [f"{proxy} {section}" for section in ("conns", "idle") for proxy in PROXIES
              for r in data[section][proxy] if not r.get("ok")]
    if failed:
        print("curves: some points failed: " + ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
