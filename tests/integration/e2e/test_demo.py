"""The embedded default: `wsgate` with no arguments serves the demo config on 8080/8081/50051.

The first test uses the fixed default ports, so ctest runs this file alone (RESOURCE_LOCK); the
seed services' environment names choose the address. The others run the demo on other ports: its
/proxy/echo upstream follows the data plane's port.
"""

import asyncio
import os
import re
import signal
import subprocess
import tempfile

from wsgate_harness import WSGATE_BIN, Gateway, connect, http_request, wait_for


def test_demo_config_proxies_through_itself():
    env = dict(os.environ, HOST="127.0.0.1")
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen([WSGATE_BIN, "--shutdown-grace", "0.5"], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        try:
            def ready():
                assert proc.poll() is None, "wsgate exited"
                try:
                    return http_request(8081, "/ready", timeout=1)[0] == 200
                except OSError:
                    return False
            wait_for(ready, 15, what="demo /ready")

            async def main():
                async with connect("ws://127.0.0.1:8080/proxy/echo") as ws:
                    await ws.send("through the proxy")
                    assert await asyncio.wait_for(ws.recv(), 5) == "through the proxy"
                async with connect("ws://127.0.0.1:8080/echo") as ws:
                    await ws.send(b"\x01\x02")
                    assert await asyncio.wait_for(ws.recv(), 5) == b"\x01\x02"
            asyncio.run(main())
            metrics = http_request(8081, "/metrics")[2].decode()
            assert 'wsgate_connections_total{route="proxy-echo",outcome="accepted"} 1' in metrics
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            log.seek(0)
            print(log.read().decode(errors="replace"))


def _proxy_echo_round_trip(port):
    async def main():
        async with connect(f"ws://127.0.0.1:{port}/proxy/echo") as ws:
            await ws.send("through the proxy")
            assert await asyncio.wait_for(ws.recv(), 5) == "through the proxy"
    asyncio.run(main())


def test_demo_proxy_echo_follows_the_port():
    # Another port than 8080: the demo's proxy-echo upstream is this process's own /echo, not
    # whatever listens on 8080.
    with Gateway() as gw:
        _proxy_echo_round_trip(gw.port)
        metrics = http_request(gw.admin_port, "/metrics")[2].decode()
        assert 'wsgate_connections_total{route="proxy-echo",outcome="accepted"} 1' in metrics
        # The upstream leg reached this process's echo route.
        assert 'wsgate_connections_total{route="echo",outcome="accepted"} 1' in metrics


def test_demo_proxy_echo_follows_an_ephemeral_port():
    gw = Gateway()
    gw.args[gw.args.index("--port") + 1] = "0"
    with gw:
        m = wait_for(lambda: re.search(r"wsgate ready: data port (\d+)", gw.output()),
                     what="ready line")
        port = int(m.group(1))
        assert port != 0
        _proxy_echo_round_trip(port)
        metrics = http_request(gw.admin_port, "/metrics")[2].decode()
        assert 'wsgate_connections_total{route="echo",outcome="accepted"} 1' in metrics
