"""The state directory under faults: the process killed with SIGKILL right after committed
changes, and a state directory that is full or read-only when a change comes.

Full and read-only are real file systems: a 64 KiB tmpfs mounted over the state directory and
filled, and a read-only bind mount of it (chmod does not stop root). ctest runs this file in a
private mount namespace (`unshare -m`), so no mount outlives the test even if it dies."""

import asyncio
import json
import os
import signal
import subprocess
import tempfile

import grpc
import pytest

from wsgate_harness import Gateway, connect, handshake_status, http_request, stubs

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
"""


def route_stub(gw):
    return stubs().route_grpc.RouteServiceStub(gw.channel())


def echo_route(name, path):
    s = stubs()
    return s.config.Route(name=name, path=path, echo=s.config.EchoRoute())


def listed(gw):
    resp = route_stub(gw).ListRoutes(stubs().route.ListRoutesRequest())
    return resp.config_version, [r.SerializeToString(deterministic=True) for r in resp.routes]


async def roundtrip(url, text="ping"):
    async with connect(url) as ws:
        await ws.send(text)
        return await asyncio.wait_for(ws.recv(), 5)


def status_of(url):
    return asyncio.run(handshake_status(url))


def mount(*args):
    subprocess.run(["mount", *args], check=True, capture_output=True, timeout=10)


def umount(path):
    subprocess.run(["umount", path], check=True, capture_output=True, timeout=10)


def test_sigkill_right_after_committed_changes_loses_nothing():
    with tempfile.TemporaryDirectory() as state:
        gw = Gateway(CONFIG, state_dir=state).start()
        try:
            rs = route_stub(gw)
            for i in range(20):
                rs.PutRoute(stubs().route.PutRouteRequest(route=echo_route(f"r{i}", f"/r{i}")))
            rs.DeleteRoute(stubs().route.DeleteRouteRequest(name="r7"))
            last = rs.PutRoute(stubs().route.PutRouteRequest(route=echo_route("last", "/last")))
            before = listed(gw)
            assert before[0] == last.config_version
            gw.signal(signal.SIGKILL)  # at once after the last acknowledgement
            assert gw.wait_exit(10) == -signal.SIGKILL
        finally:
            gw.stop()
        with Gateway(CONFIG, state_dir=state) as again:
            assert listed(again) == before
            assert asyncio.run(roundtrip(again.url("/last"), "kept")) == "kept"
            assert asyncio.run(roundtrip(again.url("/r19"), "kept")) == "kept"
            assert status_of(again.url("/r7")) == 404
        assert sorted(os.listdir(state)) == ["routes.json"]  # no temp file left behind


@pytest.fixture
def mounted_state():
    """A state directory on a 64 KiB tmpfs of its own."""
    with tempfile.TemporaryDirectory() as d:
        state = os.path.join(d, "state")
        os.mkdir(state)
        mount("-t", "tmpfs", "-o", "size=64k", "tmpfs", state)
        try:
            yield state
        finally:
            umount(state)


def fill(directory):
    """Writes a file until the file system says ENOSPC."""
    fd = os.open(os.path.join(directory, "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with pytest.raises(OSError) as e:
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    assert e.value.errno == 28, e.value  # ENOSPC


def refused_put_keeps_the_committed_config(gw, state, what):
    rs = route_stub(gw)
    before = listed(gw)
    file_before = open(os.path.join(state, "routes.json"), "rb").read()
    with pytest.raises(grpc.RpcError) as e:
        rs.PutRoute(stubs().route.PutRouteRequest(route=echo_route("new", "/new")))
    assert e.value.code() == grpc.StatusCode.UNAVAILABLE, e.value
    print(f"PutRoute refused: {e.value.code().name}: {e.value.details()}")
    assert "state file" in e.value.details() and what in e.value.details(), e.value.details()
    # Nothing changed: not in memory, not on disk, not served; the old routes still serve.
    assert listed(gw) == before
    assert open(os.path.join(state, "routes.json"), "rb").read() == file_before
    assert status_of(gw.url("/new")) == 404
    assert asyncio.run(roundtrip(gw.url("/kept"), "still")) == "still"
    assert http_request(gw.admin_port, "/ready")[0] == 200
    assert [f for f in os.listdir(state) if f.startswith("routes.json.tmp")] == []
    return before


def test_a_full_state_directory_refuses_put_route_and_keeps_the_last_config(mounted_state):
    with Gateway(CONFIG, state_dir=mounted_state) as gw:
        route_stub(gw).PutRoute(stubs().route.PutRouteRequest(route=echo_route("kept", "/kept")))
        fill(mounted_state)
        before = refused_put_keeps_the_committed_config(gw, mounted_state, "No space left")
        # Room again: the next change goes through, one version on.
        os.unlink(os.path.join(mounted_state, "filler"))
        resp = route_stub(gw).PutRoute(stubs().route.PutRouteRequest(route=echo_route("new", "/new")))
        assert resp.config_version == before[0] + 1
        assert asyncio.run(roundtrip(gw.url("/new"), "now")) == "now"
    stored = json.load(open(os.path.join(mounted_state, "routes.json")))
    assert sorted(r["name"] for r in stored["routes"]) == ["echo", "kept", "new"]


def test_a_read_only_state_directory_refuses_put_route_and_keeps_the_last_config():
    with tempfile.TemporaryDirectory() as state:
        with Gateway(CONFIG, state_dir=state) as gw:
            route_stub(gw).PutRoute(stubs().route.PutRouteRequest(route=echo_route("kept", "/kept")))
            mount("--bind", "-o", "ro", state, state)
            try:
                refused_put_keeps_the_committed_config(gw, state, "Read-only file system")
            finally:
                umount(state)
        # Restarted on the same directory: exactly the last committed config.
        with Gateway(CONFIG, state_dir=state) as gw:
            assert status_of(gw.url("/new")) == 404
            assert asyncio.run(roundtrip(gw.url("/kept"), "back")) == "back"
