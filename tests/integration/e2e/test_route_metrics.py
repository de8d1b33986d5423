"""A route's series leave /metrics when the route is deleted: routes created and deleted over gRPC
(the real RouteService) do not grow /metrics, and a deleted route's series are gone while the
others stay. Real gateway, real client traffic, real scrapes of the admin port."""

import asyncio

import pytest

from wsgate_harness import Gateway, connect, handshake_status, http_request, stubs, wait_for

CONFIG = """
routes:
  - name: kept
    path: /kept
    echo: {}
"""


def route_stub(gw):
    return stubs().route_grpc.RouteServiceStub(gw.channel())


def echo_route(name, path):
    s = stubs()
    return s.config.Route(name=name, path=path, echo=s.config.EchoRoute())


def scrape(gw):
    status, _, body = http_request(gw.admin_port, "/metrics")
    assert status == 200
    return body.decode()


def route_series(text, route):
    return [line for line in text.splitlines()
            if not line.startswith("#") and f'route="{route}"' in line]


async def roundtrip(url):
    async with connect(url) as ws:
        await ws.send("ping")
        assert await asyncio.wait_for(ws.recv(), 5) == "ping"


def test_deleted_route_series_are_removed_and_cycles_do_not_grow_metrics():
    with Gateway(CONFIG) as gw:
        rs = route_stub(gw)
        s = stubs()
        asyncio.run(roundtrip(gw.url("/kept")))

        def cycle(i):
            name = f"tmp{i}"
            rs.PutRoute(s.route.PutRouteRequest(route=echo_route(name, f"/tmp{i}")))
            wait_for(lambda: asyncio.run(handshake_status(gw.url(f"/tmp{i}"))) == 101,
                     what=f"route {name} serving")
            asyncio.run(roundtrip(gw.url(f"/tmp{i}")))  # counters with non-zero values
            rs.DeleteRoute(s.route.DeleteRouteRequest(name=name))
            return name

        first = cycle(0)
        assert route_series(scrape(gw), first) == []
        baseline = len(scrape(gw).encode())
        for i in range(1, 30):
            name = cycle(i)
            assert route_series(scrape(gw), name) == [], name
        after = scrape(gw)
        # Series of every deleted route are gone; the kept route's remain.
        assert not any('route="tmp' in line for line in after.splitlines()), after
        assert route_series(after, "kept")
        # Only values change from one scrape to the next, never the set of series. A little
        # slack for counters that gained digits (the kept route's, the config version).
        assert len(after.encode()) <= baseline + 256, (baseline, len(after.encode()))

        # A route of a deleted name, configured again, is exported again.
        rs.PutRoute(s.route.PutRouteRequest(route=echo_route(first, "/again")))
        wait_for(lambda: route_series(scrape(gw), first), what="the re-created route's series")
