# Times PutRoute on the demo config (wsgate on free ports): 20 route changes.
# Run: WSGATE_BIN=build/controlplane/main/wsgate /usr/bin/python3 bench/putroute_latency.py
import os, statistics, sys, time
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "integration", "e2e"))
from wsgate_harness import Gateway, stubs
s = stubs()
with Gateway() as gw:
    stub = s.route_grpc.RouteServiceStub(gw.channel())
    times = []
    for i in range(20):
        r = s.config.Route(name="bench", path="/bench", echo=s.config.EchoRoute())
        t = time.perf_counter()
        stub.PutRoute(s.route.PutRouteRequest(route=r))
        times.append((time.perf_counter() - t) * 1000)
    print(f"PutRoute x20 on the demo config: median {statistics.median(times):.1f} ms, "
          f"mean {statistics.mean(times):.1f} ms, min {min(times):.1f} ms, max {max(times):.1f} ms")
