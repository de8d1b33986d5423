"""The split deployment: one control plane (--role=controlplane) steering three data planes
(--role=dataplane) over DataPlaneService.Sync, on loopback. Every process is the real binary."""

import asyncio
import contextlib
import os
import threading

import grpc
import pytest

from split_cluster import (ECHO_ONLY, applied_version, control_plane, data_plane, data_planes,
                           delete_route, echo_once, echo_route, inventory, kill9, metric,
                           metrics_of, put_route, ready_status, restart, roundtrip, stop_all,
                           stubs, sync_stubs, wait_for)
from wsgate_harness import connect, run_wsgate

N = 3


@contextlib.contextmanager
def cluster(tmp_path, cp_args=(), cp_env=None, dp_args=(), dp_env=None):
    cp = control_plane(str(tmp_path / "cp"), cp_args, cp_env)
    dps = []
    try:
        cp.start()
        for i in range(N):
            dp = data_plane(cp, f"dp{i}", str(tmp_path / f"dp{i}"), dp_args, dp_env)
            dps.append(dp)
            dp.start()  # ready: it has the control plane's snapshot
        yield cp, dps
    finally:
        stop_all(dps + [cp])


def converge(cp, dps, version, timeout=10):
    for dp in dps:
        wait_for(lambda: applied_version(dp) >= version, timeout,
                 what=f"{dp.args[-1]} at version {version}")
    wait_for(lambda: all(d.applied_version >= version and d.state == "connected"
                         for d in data_planes(cp).values()) and len(data_planes(cp)) == len(dps),
             timeout, what=f"the inventory at version {version}")


def test_route_put_on_the_control_plane_is_served_by_every_data_plane(tmp_path):
    with cluster(tmp_path) as (cp, dps):
        v = put_route(cp, echo_route("added", "/added")).config_version
        converge(cp, dps, v)
        for dp in dps:
            assert asyncio.run(roundtrip(dp.url("/added"), "hi")) == "hi"
        planes = data_planes(cp)
        assert sorted(planes) == ["dp0", "dp1", "dp2"]
        for dp in dps:
            d = planes[dp.args[-1]]
            assert d.state == "connected" and d.applied_version == v
            assert d.address.endswith(f":{dp.port}") and d.workers == 1
            assert d.connected_since.seconds > 0 and d.last_seen.seconds > 0
        m = metrics_of(cp)
        assert metric(m, "wsgate_dataplanes", state="connected") == N
        assert metric(m, "wsgate_config_push_seconds_count") >= N
        # The control plane serves no WebSocket listener: its data port is closed.
        with pytest.raises(OSError):
            asyncio.run(roundtrip(cp.url("/echo")))
        # A sample a second reaches the inventory: the open session is counted on its data plane.
        async def held():
            async with connect(dps[1].url("/echo")) as ws:
                await echo_once(ws, "x")
                wait_for(lambda: data_planes(cp)["dp1"].active_connections == 1, 10,
                         what="dp1's sample with its session")
        asyncio.run(held())


def test_kill9_of_the_control_plane_drops_no_session_and_it_comes_back(tmp_path):
    async def scenario(cp, dps):
        sessions = [await connect(dp.url("/echo")).__aenter__() for dp in dps]
        for ws in sessions:
            assert await echo_once(ws, "before") == "before"
        kill9(cp)
        for dp in dps:
            wait_for(lambda: metric(metrics_of(dp), "wsgate_dataplane_control_plane_connected") == 0,
                     10, what="the data plane to see its control plane gone")
        for i, ws in enumerate(sessions):
            assert await echo_once(ws, f"during {i}") == f"during {i}"
        for dp in dps:
            assert await roundtrip(dp.url("/echo"), "new") == "new"
            assert ready_status(dp) == 200
            assert metric(metrics_of(dp), "wsgate_dataplane_snapshot_age_seconds") > 0
        restart(cp)
        # Back in the inventory within 5 s of the restart (the reconnect backoff is still short).
        wait_for(lambda: sum(d.state == "connected" for d in data_planes(cp).values()) == N, 5,
                 what="every data plane connected again")
        v = put_route(cp, echo_route("after", "/after")).config_version
        converge(cp, dps, v)
        for dp in dps:
            assert await roundtrip(dp.url("/after"), "a") == "a"
        for i, ws in enumerate(sessions):
            assert await echo_once(ws, f"after {i}") == f"after {i}"
            await ws.close()

    with cluster(tmp_path) as (cp, dps):
        v = put_route(cp, echo_route("before", "/before")).config_version
        converge(cp, dps, v)
        asyncio.run(scenario(cp, dps))


def test_data_plane_restarted_while_the_control_plane_is_down_serves_its_cache(tmp_path):
    with cluster(tmp_path) as (cp, dps):
        v = put_route(cp, echo_route("cached", "/cached")).config_version
        converge(cp, dps, v)
        assert os.path.exists(tmp_path / "dp0" / "snapshot.json")
        kill9(cp)
        dp = dps[0]
        restart(dp)  # waits for /ready 200: the cached snapshot serves at once
        assert applied_version(dp) == v
        assert asyncio.run(roundtrip(dp.url("/cached"), "c")) == "c"
        m = metrics_of(dp)
        assert metric(m, "wsgate_dataplane_control_plane_connected") == 0
        assert metric(m, "wsgate_dataplane_snapshot_age_seconds") > 0
        # A data plane with no cache and no control plane has nothing to serve: not ready.
        fresh = data_plane(cp, "fresh", str(tmp_path / "fresh"))
        try:
            fresh.start(wait=False)
            wait_for(lambda: fresh.proc.poll() is None and "wsgate ready" in fresh.output(), 15,
                     what="the fresh data plane's start")
            assert ready_status(fresh) == 503
            # Once the control plane is back it gets a snapshot and becomes ready.
            restart(cp)
            fresh.wait_ready()
            assert applied_version(fresh) == v
        finally:
            stop_all([fresh])


def test_a_nack_keeps_the_last_good_snapshot_and_is_reported(tmp_path):
    # The route names a JWT secret variable the control plane has and the data planes lack: the
    # control plane admits it, each data plane refuses it on its own host.
    env = {"WSGATE_SPLIT_JWT_SECRET": "a-secret-only-the-control-plane-has"}
    dp_env = {"WSGATE_SPLIT_JWT_SECRET": ""}
    with cluster(tmp_path, cp_env=env, dp_env=dp_env) as (cp, dps):
        good = put_route(cp, echo_route("good", "/good")).config_version
        converge(cp, dps, good)
        s = stubs()
        jwt = s.config.Route(name="jwt", path="/jwt/{agent_id}/ws/{session_id}",
                             pubsub=s.config.PubSubRoute(
                                 auth=s.config.PubSubRoute.AUTH_JWT_HS256,
                                 jwt_secret_env="WSGATE_SPLIT_JWT_SECRET"))
        bad = put_route(cp, jwt).config_version
        assert bad == good + 1
        wait_for(lambda: all(d.last_nack_version == bad for d in data_planes(cp).values()), 10,
                 what="every data plane's NACK in the inventory")
        for d in data_planes(cp).values():
            assert "routes[" in d.last_nack_error and "jwt_secret_env" in d.last_nack_error
            assert d.applied_version == good and d.state == "connected"
        assert metric(metrics_of(cp), "wsgate_dataplane_nacks_total") == N
        for dp in dps:
            assert applied_version(dp) == good
            assert asyncio.run(roundtrip(dp.url("/good"), "g")) == "g"
            assert ready_status(dp) == 200
        # The next commit supersedes the refused one.
        fixed = delete_route(cp, "jwt")
        converge(cp, dps, fixed)


def test_the_stream_needs_an_admin_token(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("admin admin-token-0123456789abcdef\nviewer viewer-token-0123456789abcd\n")
    good = tmp_path / "good-token"
    good.write_text("admin-token-0123456789abcdef\n")
    bad = tmp_path / "bad-token"
    bad.write_text("not-a-token-of-this-control-plane\n")
    viewer = tmp_path / "viewer-token"
    viewer.write_text("viewer-token-0123456789abcd\n")
    admin = "admin-token-0123456789abcdef"
    cp = control_plane(str(tmp_path / "cp"), ["--admin-token-file", str(tokens)])
    procs = [cp]
    try:
        cp.start()
        ok = data_plane(cp, "ok", str(tmp_path / "ok"), ["--dataplane-token-file", str(good)])
        procs.append(ok)
        ok.start()
        refused = {}
        for name, path in (("bad", bad), ("viewer", viewer), ("none", None)):
            args = ["--dataplane-token-file", str(path)] if path else []
            dp = data_plane(cp, name, str(tmp_path / name), args)
            procs.append(dp)
            dp.start(wait=False)
            refused[name] = dp
        for name, dp in refused.items():
            wait_for(lambda: "refused the stream" in dp.output(), 15, what=f"{name} refused")
            assert ready_status(dp) == 503
        assert "refused the stream (gRPC code 16)" in refused["bad"].output()  # UNAUTHENTICATED
        assert "refused the stream (gRPC code 16)" in refused["none"].output()
        assert "refused the stream (gRPC code 7)" in refused["viewer"].output()  # PERMISSION_DENIED
        assert sorted(data_planes(cp, admin)) == ["ok"]
        # The same over a raw stream: no hello is even read without a valid token.
        sy = sync_stubs()
        stub = sy.grpc.DataPlaneServiceStub(cp.channel())
        hello = sy.pb2.SyncRequest(hello=sy.pb2.DataPlaneHello(id="raw"))
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Sync(iter([hello]), timeout=5,
                           metadata=[("authorization", "Bearer wrong-token-0123456789")]))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Sync(iter([hello]), timeout=5))
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        stop_all(procs)


def test_a_data_plane_needs_its_control_plane_and_a_hello(tmp_path):
    code, out = run_wsgate(["--role=dataplane", "--port", "0", "--admin-port", "0"])
    assert code == 2 and "--control-plane: required with --role=dataplane" in out
    code, out = run_wsgate(["--role=dataplane", "--control-plane", "nope"])
    assert code == 2 and "--control-plane: want HOST:PORT" in out
    code, out = run_wsgate(["--control-plane", "127.0.0.1:1"])
    assert code == 2 and "--control-plane: only meaningful with --role=dataplane" in out
    cp = control_plane(str(tmp_path / "cp"))
    try:
        cp.start()
        sy = sync_stubs()
        stub = sy.grpc.DataPlaneServiceStub(cp.channel())
        with pytest.raises(grpc.RpcError) as e:
            list(stub.Sync(iter([sy.pb2.SyncRequest(hello=sy.pb2.DataPlaneHello())]), timeout=5))
        assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "hello.id" in e.value.details()
        # The control plane answers a hello at version 0 with its whole current config.
        done = threading.Event()

        def requests():
            yield sy.pb2.SyncRequest(hello=sy.pb2.DataPlaneHello(id="raw"))
            done.wait(10)  # the stream stays open until the snapshot is read

        responses = stub.Sync(requests(), timeout=10)
        first = next(responses)
        done.set()
        responses.cancel()
        assert first.snapshot.version >= 1
        assert [r.name for r in first.snapshot.config.routes] == ["echo"]
    finally:
        stop_all([cp])


def test_more_data_planes_than_a_gateway_has_grpc_threads(tmp_path):
    # Each stream holds a control-plane gRPC thread; the one-process cap (16) would refuse the
    # 17th data plane with RESOURCE_EXHAUSTED. 24 raw streams stand in for 24 data planes.
    n = 24
    cp = control_plane(str(tmp_path / "cp"))
    streams = []
    done = threading.Event()
    try:
        cp.start()
        sy = sync_stubs()
        stub = sy.grpc.DataPlaneServiceStub(cp.channel())

        def requests(i):
            yield sy.pb2.SyncRequest(hello=sy.pb2.DataPlaneHello(id=f"sim{i}"))
            done.wait(30)

        for i in range(n):
            responses = stub.Sync(requests(i), timeout=30)
            streams.append(responses)
            assert next(responses).snapshot.version >= 1, f"sim{i} got no snapshot"
        wait_for(lambda: sum(d.state == "connected" for d in data_planes(cp).values()) == n, 10,
                 what=f"{n} connected data planes")
        assert metric(metrics_of(cp), "wsgate_dataplanes", state="connected") == n
        # A change still reaches every one of them.
        v = put_route(cp, echo_route("many", "/many")).config_version
        for i, responses in enumerate(streams):
            assert next(responses).snapshot.version == v, f"sim{i} missed version {v}"
    finally:
        done.set()
        for r in streams:
            r.cancel()
        stop_all([cp])
