# Config propagation in the split deployment: one control plane and N data planes (--workers 1
# each, real processes on loopback). For each of 100 PutRoutes: the time from sending PutRoute to
# the control plane until its inventory shows every data plane at that version (each data plane
# ACKs after it has applied the snapshot to its workers), polled every millisecond with one
# GetInventory at a time. Prints p50/p99 per N.
# Run: WSGATE_BIN=build/controlplane/main/wsgate /usr/bin/python3 bench/split_bench.py [--planes 1,5,20] [--changes 100]
import argparse
import os
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration", "split"))
from split_cluster import control_plane, data_plane, data_planes, echo_route, put_route  # noqa: E402


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def run(n, changes):
    with tempfile.TemporaryDirectory(prefix="split-bench-") as tmp:
        cp = control_plane(os.path.join(tmp, "cp"), ["--log-level", "warn"])
        dps = []
        try:
            cp.start()
            for i in range(n):
                dp = data_plane(cp, f"dp{i}", os.path.join(tmp, f"dp{i}"), ["--log-level", "warn"])
                dps.append(dp)
                try:
                    dp.start()
                except AssertionError:
                    print(dp.output(), file=sys.stderr)
                    raise
            deadline = time.monotonic() + 30
            while len([d for d in data_planes(cp).values() if d.state == "connected"]) < n:
                assert time.monotonic() < deadline, "data planes did not connect"
                time.sleep(0.05)
            times, puts = [], []
            for i in range(changes):
                t0 = time.perf_counter()
                v = put_route(cp, echo_route("bench", f"/bench{i}")).config_version
                puts.append((time.perf_counter() - t0) * 1000)
                while True:
                    planes = data_planes(cp).values()
                    if len(planes) == n and all(d.applied_version >= v for d in planes):
                        break
                    time.sleep(0.001)
                times.append((time.perf_counter() - t0) * 1000)
            return times, puts
        finally:
            for g in dps + [cp]:
                g.stop()
                g.tmp.cleanup()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--planes", default="1,5,20")
    ap.add_argument("--changes", type=int, default=100)
    a = ap.parse_args()
    print("| data planes | changes | p50 ms | p99 ms | max ms | PutRoute alone p50 / p99 ms |")
    print("|---|---|---|---|---|---|")
    for n in [int(x) for x in a.planes.split(",")]:
        t, p = run(n, a.changes)
        print(f"| {n} | {len(t)} | {statistics.median(t):.1f} | {pct(t, 99):.1f} | {max(t):.1f} "
              f"| {statistics.median(p):.1f} / {pct(p, 99):.1f} |", flush=True)


if __name__ == "__main__":
    main()
