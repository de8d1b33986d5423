"""The embedded default: `wsgate` with no arguments serves the demo config on 8080/8081/50051.

Uses the fixed default ports (the demo's /proxy/echo route points at ws://127.0.0.1:8080/echo), so
ctest runs it alone (RESOURCE_LOCK). The seed services' environment names choose the address.
"""

import asyncio
import os
import signal
import subprocess
import tempfile

from wsgate_harness import WSGATE_BIN, connect, http_request, wait_for


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
