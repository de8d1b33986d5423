"""One control plane and N data planes of the split deployment, on free loopback ports.

Built on the e2e harness (tests/integration/e2e/wsgate_harness.py): every process is the real
wsgate binary, with --role=controlplane or --role=dataplane.
"""

import asyncio
import importlib
import os
import signal
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))

from wsgate_harness import (REPO, Gateway, connect, http_request, metric,  # noqa: E402
                            parse_metrics, stubs, wait_for)

ECHO_ONLY = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""

_sync = None


def sync_stubs():
    """The DataPlaneService stubs (the shared harness compiles the other services)."""
    global _sync
    if _sync is not None:
        return _sync
    stubs()  # puts its output directory on sys.path and compiles what this proto imports
    out = tempfile.mkdtemp(prefix="wsgate-split-stubs-")
    proto_root = os.path.join(REPO, "proto")
    subprocess.run(["/usr/bin/protoc", f"-I{proto_root}", f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
                    os.path.join(proto_root, "wsgate", "v1", "dataplane_service.proto")],
                   check=True)
    pb2 = _load(os.path.join(out, "wsgate", "v1", "dataplane_service_pb2.py"),
                "wsgate.v1.dataplane_service_pb2")
    grpc_mod = _load(os.path.join(out, "wsgate", "v1", "dataplane_service_pb2_grpc.py"),
                     "wsgate.v1.dataplane_service_pb2_grpc")

    class S:
        pass
    _sync = S()
    _sync.pb2, _sync.grpc = pb2, grpc_mod
    return _sync


def _load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def echo_route(name, path):
    s = stubs()
    return s.config.Route(name=name, path=path, echo=s.config.EchoRoute())


def put_route(cp, route, token=None):
    s = stubs()
    md = [("authorization", f"Bearer {token}")] if token else None
    return s.route_grpc.RouteServiceStub(cp.channel()).PutRoute(
        s.route.PutRouteRequest(route=route), metadata=md, timeout=10)


def delete_route(cp, name):
    s = stubs()
    return s.route_grpc.RouteServiceStub(cp.channel()).DeleteRoute(
        s.route.DeleteRouteRequest(name=name), timeout=10).config_version


def inventory(cp, token=None):
    s = stubs()
    md = [("authorization", f"Bearer {token}")] if token else None
    return s.inventory_grpc.InventoryServiceStub(cp.channel()).GetInventory(
        s.inventory.GetInventoryRequest(), metadata=md, timeout=10)


def data_planes(cp, token=None):
    return {d.id: d for d in inventory(cp, token).data_planes}


def metrics_of(gw):
    status, _, body = http_request(gw.admin_port, "/metrics")
    assert status == 200
    return parse_metrics(body.decode())


def applied_version(dp):
    return int(metric(metrics_of(dp), "wsgate_config_version"))


def ready_status(gw):
    return http_request(gw.admin_port, "/ready", timeout=2)[0]


def control_plane(state_dir, args=(), env=None):
    return Gateway(ECHO_ONLY, state_dir=state_dir, args=["--role=controlplane", *args], env=env,
                   workers=1)


def data_plane(cp, name, state_dir, args=(), env=None):
    return Gateway(None, state_dir=state_dir, workers=1, env=env,
                   args=["--role=dataplane", "--control-plane", f"127.0.0.1:{cp.grpc_port}",
                         "--dataplane-id", name, *args])


def kill9(gw):
    gw.proc.send_signal(signal.SIGKILL)
    gw.proc.wait(timeout=10)
    gw.log.close()


def restart(gw, wait=True):
    """Starts the same process again: the same ports, flags and state dir."""
    if gw.proc.poll() is None:
        gw.stop()
    return gw.start(wait=wait)


async def echo_once(ws, text):
    await ws.send(text)
    return await asyncio.wait_for(ws.recv(), 5)


async def roundtrip(url, text="ping"):
    async with connect(url) as ws:
        return await echo_once(ws, text)


def stop_all(gateways):
    """SIGTERM each process, then: each stopped cleanly (exit 0) and, under WSGATE_SANITIZE, no
    sanitizer report (LeakSanitizer's comes at exit) is in its last run's output."""
    problems = []
    for g in gateways:
        if g.proc is None:
            continue
        g.stop()
        out = g.output()
        g.tmp.cleanup()
        if "Sanitizer" in out or "runtime error:" in out:
            problems.append(f"{g.args[-1]}: sanitizer report:\n{out[-20000:]}")
        elif g.proc.returncode != 0:
            problems.append(f"{g.args[-1]}: exit {g.proc.returncode}:\n{out[-5000:]}")
    assert not problems, "\n".join(problems)
