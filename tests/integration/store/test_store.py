"""Control-plane replicas sharing one config store in Redis (--store-url).

Real wsgate processes (default role: both planes in each) and a real redis-server on a free
port; redis-cli is the independent client that reads and writes the documented key layout
(hash wsgate:config {version, state}, channel wsgate:config:changed)."""

import asyncio
import json
import signal
import threading

import grpc
import pytest

from wsgate_harness import (Gateway, RedisServer, connect, handshake_status, http_request,
                            metric, parse_metrics, run_wsgate, stubs, wait_for)

ECHO_ONLY = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""

OTHER = """
routes:
  - name: other
    path: /other
    echo: {}
"""


@pytest.fixture
def redis():
    r = RedisServer().start()
    yield r
    if r.proc and r.proc.poll() is None:
        r.proc.send_signal(signal.SIGCONT)  # a test that failed while it was stopped
    r.stop()


def replica(redis, config=ECHO_ONLY):
    return Gateway(config, args=["--store-url", redis.url], workers=1)


def route_stub(gw):
    return stubs().route_grpc.RouteServiceStub(gw.channel())


def echo_route(name, path):
    s = stubs()
    return s.config.Route(name=name, path=path, echo=s.config.EchoRoute())


def put(gw, name, path, expected=None, timeout=10):
    req = stubs().route.PutRouteRequest(route=echo_route(name, path))
    if expected is not None:
        req.expected_version = expected
    return route_stub(gw).PutRoute(req, timeout=timeout)


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


def applied(gw):
    """The config version this process's data plane has applied."""
    return int(metric(metrics(gw), "wsgate_config_version"))


def converge(version, *gws):
    for gw in gws:
        wait_for(lambda: applied(gw) >= version, 15, what=f"data plane at version {version}")


def route_names(gw):
    resp = route_stub(gw).ListRoutes(stubs().route.ListRoutesRequest(), timeout=10)
    return sorted(r.name for r in resp.routes)


def roundtrip(url, text="ping"):
    async def go():
        async with connect(url) as ws:
            await ws.send(text)
            return await asyncio.wait_for(ws.recv(), 5)
    return asyncio.run(go())


def status_of(url):
    return asyncio.run(handshake_status(url))


def stored(redis):
    version = redis.cli("HGET", "wsgate:config", "version").strip()
    state = json.loads(redis.cli("HGET", "wsgate:config", "state"))
    return int(version), state


def test_change_through_one_replica_is_served_by_the_other(redis):
    with replica(redis) as gw1, replica(redis, OTHER) as gw2:
        # The second replica found the store seeded by the first, not its own --config.
        assert route_names(gw2) == ["echo"]
        assert metric(metrics(gw1), "wsgate_config_store_up", store="redis") == 1
        created = put(gw1, "added", "/added")
        assert created.created
        converge(created.config_version, gw2)
        assert roundtrip(gw2.url("/added"), "through 2") == "through 2"
        # The key layout the README documents, read by an independent client.
        version, state = stored(redis)
        assert version == created.config_version
        assert sorted(r["name"] for r in state["routes"]) == ["added", "echo"]

        deleted = route_stub(gw1).DeleteRoute(
            stubs().route.DeleteRouteRequest(name="added"), timeout=10)
        assert deleted.config_version > created.config_version
        converge(deleted.config_version, gw2)
        assert status_of(gw2.url("/added")) == 404
        assert route_names(gw2) == ["echo"]


def test_write_made_by_another_client_in_the_documented_layout_is_applied(redis):
    with replica(redis) as gw1, replica(redis) as gw2:
        version, state = stored(redis)
        state["routes"].append({"name": "outside", "path": "/outside", "echo": {},
                                "version": str(version + 1)})
        state["config_version"] = str(version + 1)
        redis.cli("HSET", "wsgate:config", "version", str(version + 1),
                  "state", json.dumps(state))
        redis.cli("PUBLISH", "wsgate:config:changed", str(version + 1))
        converge(version + 1, gw1, gw2)
        assert roundtrip(gw1.url("/outside")) == "ping"
        assert roundtrip(gw2.url("/outside")) == "ping"


def race(calls):
    """Runs the calls at the same moment from threads; returns their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except grpc.RpcError as e:
            results[i] = e
    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_same_expected_version_through_both_replicas_one_wins(redis):
    with replica(redis) as gw1, replica(redis) as gw2:
        base = put(gw1, "v", "/v")
        converge(base.config_version, gw2)
        for round_ in range(5):
            current = route_stub(gw1).GetRoute(stubs().route.GetRouteRequest(name="v"),
                                               timeout=10).version
            converge(current, gw1, gw2)
            results = race([
                lambda: put(gw1, "v", f"/v1-{round_}", expected=current),
                lambda: put(gw2, "v", f"/v2-{round_}", expected=current),
            ])
            won = [r for r in results if not isinstance(r, grpc.RpcError)]
            lost = [r for r in results if isinstance(r, grpc.RpcError)]
            assert len(won) == 1 and len(lost) == 1, results
            assert lost[0].code() == grpc.StatusCode.FAILED_PRECONDITION, lost[0].details()
            assert won[0].config_version > current
            converge(won[0].config_version, gw1, gw2)
            path = won[0].route.path
            for gw in (gw1, gw2):
                got = route_stub(gw).GetRoute(stubs().route.GetRouteRequest(name="v"),
                                              timeout=10)
                assert got.path == path and got.version == won[0].config_version


def test_concurrent_changes_without_expected_version_all_land(redis):
    with replica(redis) as gw1, replica(redis) as gw2:
        start = applied(gw1)
        names = [f"r{i}" for i in range(8)]
        results = race([(lambda n=n, gw=(gw1 if i % 2 else gw2): put(gw, n, "/" + n))
                        for i, n in enumerate(names)])
        errors = [r for r in results if isinstance(r, grpc.RpcError)]
        assert not errors, [e.details() for e in errors]
        versions = sorted(r.config_version for r in results)
        # One version per change, none lost or shared: the store serialized them.
        assert versions == list(range(start + 1, start + 1 + len(names)))
        converge(versions[-1], gw1, gw2)
        for gw in (gw1, gw2):
            assert route_names(gw) == sorted(names + ["echo"])
        assert stored(redis)[0] == versions[-1]


def test_redis_stopped_changes_refused_serving_goes_on_then_resync(redis):
    with replica(redis) as gw1, replica(redis) as gw2:
        kept = put(gw1, "kept", "/kept")
        converge(kept.config_version, gw2)
        redis.proc.send_signal(signal.SIGSTOP)
        try:
            with pytest.raises(grpc.RpcError) as err:
                put(gw1, "during", "/during")
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert f"config store redis://127.0.0.1:{redis.port}/0" in err.value.details()
            for gw in (gw1, gw2):
                wait_for(lambda: metric(metrics(gw), "wsgate_config_store_up", store="redis") == 0,
                         15, what="wsgate_config_store_up 0")
                assert http_request(gw.admin_port, "/ready")[0] == 200
                # Existing routes are still served to new connections.
                assert roundtrip(gw.url("/kept"), "still") == "still"
                assert roundtrip(gw.url("/echo"), "still") == "still"
        finally:
            redis.proc.send_signal(signal.SIGCONT)
        for gw in (gw1, gw2):
            wait_for(lambda: metric(metrics(gw), "wsgate_config_store_up", store="redis") == 1,
                     15, what="wsgate_config_store_up 1")
        after = put(gw2, "after", "/after")
        converge(after.config_version, gw1, gw2)
        assert roundtrip(gw1.url("/after")) == "ping"
        assert "during" not in route_names(gw1)


def test_redis_restarted_empty_is_reseeded_by_the_replicas(redis):
    with replica(redis) as gw1, replica(redis) as gw2:
        kept = put(gw1, "kept", "/kept")
        converge(kept.config_version, gw2)
        redis.stop()
        with pytest.raises(grpc.RpcError) as err:
            put(gw2, "during", "/during")
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "config store" in err.value.details()
        assert roundtrip(gw2.url("/kept")) == "ping"
        redis.start()  # same port, no persistence: the store comes back empty
        # Versions never go backwards: a replica writes its newer config back.
        wait_for(lambda: redis.cli("HGET", "wsgate:config", "version").strip()
                 == str(kept.config_version), 15, what="store re-seeded")
        after = wait_for(lambda: _try_put(gw2, "after", "/after"), 15, what="PutRoute accepted")
        assert after.config_version == kept.config_version + 1
        converge(after.config_version, gw1, gw2)
        for gw in (gw1, gw2):
            assert route_names(gw) == ["after", "echo", "kept"]


def _try_put(gw, name, path):
    try:
        return put(gw, name, path)
    except grpc.RpcError as e:
        if e.code() != grpc.StatusCode.UNAVAILABLE:
            raise
        return None


def test_restarted_replica_comes_up_with_the_routes_from_redis(redis):
    with replica(redis) as gw1:
        added = put(gw1, "added", "/added")
    with replica(redis, OTHER) as gw:
        assert route_names(gw) == ["added", "echo"]
        assert applied(gw) == added.config_version
        assert roundtrip(gw.url("/added")) == "ping"
        assert status_of(gw.url("/other")) == 404
        # Read from Redis at start, before anything was served (not a later resync).
        assert f"2 routes (from redis store redis://127.0.0.1:{redis.port}/0)" in gw.output()


def test_bad_store_urls_refuse_to_start(redis, tmp_path):
    code, out = run_wsgate(["--store-url", "http://127.0.0.1:1"])
    assert code == 2 and "--store-url: must start with redis://" in out, out
    code, out = run_wsgate(["--store-url", redis.url, "--state-dir", str(tmp_path)])
    assert code == 2 and "--store-url and --state-dir are mutually exclusive" in out, out
    dead = RedisServer()  # a free port with nothing listening
    gw = Gateway(ECHO_ONLY, args=["--store-url", dead.url])
    gw.start(wait=False)
    try:
        assert gw.wait_exit() == 1
        assert f"config store redis://127.0.0.1:{dead.port}/0 unavailable" in gw.output()
    finally:
        gw.stop()
        gw.tmp.cleanup()


def test_open_session_survives_a_redis_outage(redis):
    with replica(redis) as gw:
        async def go():
            async with connect(gw.url("/echo")) as ws:
                await ws.send("before")
                assert await asyncio.wait_for(ws.recv(), 5) == "before"
                redis.proc.send_signal(signal.SIGSTOP)
                try:
                    loop = asyncio.get_running_loop()
                    refused = await loop.run_in_executor(None, lambda: _try_put(gw, "x", "/x"))
                    assert refused is None  # UNAVAILABLE while Redis is stopped
                    await ws.send("during")
                    assert await asyncio.wait_for(ws.recv(), 5) == "during"
                finally:
                    redis.proc.send_signal(signal.SIGCONT)
        asyncio.run(go())
