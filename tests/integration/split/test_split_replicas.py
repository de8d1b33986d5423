"""Two control-plane replicas sharing one config store in Redis (--store-url), each steering its
own data plane: a change made through either replica reaches every data plane, and a replica
killed with kill -9 leaves the other serving changes; the killed one's data plane keeps serving
and catches up when its replica is back."""

import asyncio

from split_cluster import (ECHO_ONLY, applied_version, data_plane, echo_route, kill9, put_route,
                           restart, roundtrip, stop_all, wait_for)
from wsgate_harness import Gateway, RedisServer


def replica(redis):
    return Gateway(ECHO_ONLY, args=["--role=controlplane", "--store-url", redis.url], workers=1)


def test_changes_through_either_replica_reach_every_data_plane(tmp_path):
    with RedisServer() as redis:
        cp1, cp2 = replica(redis), replica(redis)
        dps = []
        try:
            cp1.start()
            cp2.start()
            dp1 = data_plane(cp1, "dp1", str(tmp_path / "dp1"))
            dp2 = data_plane(cp2, "dp2", str(tmp_path / "dp2"))
            dps = [dp1, dp2]
            for dp in dps:
                dp.start()

            v1 = put_route(cp1, echo_route("one", "/one")).config_version
            for dp in dps:
                wait_for(lambda: applied_version(dp) >= v1, 10, what=f"{dp.args[-1]} at {v1}")
            assert asyncio.run(roundtrip(dp2.url("/one"), "via replica 1")) == "via replica 1"

            kill9(cp1)
            v2 = put_route(cp2, echo_route("two", "/two")).config_version
            assert v2 > v1
            wait_for(lambda: applied_version(dp2) >= v2, 10, what="dp2 at the change via cp2")
            # dp1 lost its replica: it keeps serving what it had.
            assert applied_version(dp1) == v1
            assert asyncio.run(roundtrip(dp1.url("/one"), "still")) == "still"

            restart(cp1)
            wait_for(lambda: applied_version(dp1) >= v2, 15,
                     what="dp1 caught up through its restarted replica")
            assert asyncio.run(roundtrip(dp1.url("/two"), "caught up")) == "caught up"
        finally:
            stop_all(dps + [g for g in (cp1, cp2) if g.proc is not None and g.proc.poll() is None])
