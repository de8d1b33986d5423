"""TLS on the control plane (gRPC and admin ports, mutual TLS), the certificate expiry gauge, and
wss:// upstreams of the `websocket` kind.

Certificates are made at test time by the openssl CLI: a test CA, a control-plane certificate
for localhost/127.0.0.1, a client certificate for mutual TLS, an upstream certificate that names
"localhost" only (no IP address), and a second CA nobody trusts. Everything runs on loopback:
the real wsgate binary, python grpc, a python websockets server with ssl.
"""

import asyncio
import calendar
import json
import os
import socket
import ssl
import subprocess
import tempfile
import time

import grpc
import pytest
import websockets

from wsgate_harness import (Gateway, connect, free_port, handshake_status, metric, parse_metrics,
                            run_wsgate, silent_upstream, stubs, wait_for)

CERTS = tempfile.mkdtemp(prefix="wsgate-tls-certs-")


def sh(cmd):
    subprocess.run(cmd, shell=True, cwd=CERTS, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
for ca in ("ca", "other-ca"):
    sh(f"openssl req -x509 {EC} -keyout {ca}.key -out {ca}.pem -days 30 -subj /CN=wsgate-test-{ca}")


def leaf(name, subject, san, days, ca="ca", ext="serverAuth"):
    sh(f"openssl req {EC} -keyout {name}.key -out {name}.csr -subj /CN={subject}")
    with open(os.path.join(CERTS, f"{name}.ext"), "w") as f:
        f.write(f"subjectAltName={san}\nextendedKeyUsage={ext}\n" if san else
                f"extendedKeyUsage={ext}\n")
    sh(f"openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial "
       f"-out {name}.pem -days {days} -extfile {name}.ext")


leaf("control", "localhost", "DNS:localhost,IP:127.0.0.1", 17)
leaf("client", "wsgate-test-operator", None, 5, ext="clientAuth")
leaf("upstream", "localhost", "DNS:localhost", 9)
leaf("stranger", "localhost", "DNS:localhost", 9, ca="other-ca")


def cert(name):
    return os.path.join(CERTS, name)


def read(name):
    with open(cert(name), "rb") as f:
        return f.read()


def not_after(name):
    out = subprocess.run(["openssl", "x509", "-enddate", "-noout", "-in", cert(name)],
                         check=True, capture_output=True, text=True).stdout.strip()
    # notAfter=Dec  3 14:00:00 2026 GMT
    return calendar.timegm(time.strptime(out.split("=", 1)[1], "%b %d %H:%M:%S %Y %Z"))


def https_context(client_cert=False):
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    if client_cert:
        ctx.load_cert_chain(cert("client.pem"), cert("client.key"))
    return ctx


def https_get(port, path, ctx, timeout=5):
    """(status, body) of GET https://localhost:port/path."""
    import http.client
    conn = http.client.HTTPSConnection("localhost", port, timeout=timeout, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def start_tls_gateway(extra_args, config_yaml=None, client_cert=False):
    gw = Gateway(config_yaml=config_yaml, args=extra_args)
    gw.start(wait=False)
    ctx = https_context(client_cert)

    def ready():
        if gw.proc.poll() is not None:
            raise AssertionError(f"wsgate exited with {gw.proc.returncode}:\n{gw.output()}")
        try:
            return https_get(gw.admin_port, "/ready", ctx, timeout=1)[0] == 200
        except (OSError, ssl.SSLError):
            return False
    wait_for(ready, 15, what="wsgate /ready over https")
    return gw


TLS_FLAGS = ["--control-tls-cert", cert("control.pem"), "--control-tls-key", cert("control.key")]
MTLS_FLAGS = TLS_FLAGS + ["--control-client-ca", cert("ca.pem")]


def list_routes(channel):
    s = stubs()
    return s.route_grpc.RouteServiceStub(channel).ListRoutes(s.route.ListRoutesRequest(),
                                                               timeout=5)


# ----- control plane -----

def test_grpc_and_admin_over_tls_and_the_expiry_gauge():
    gw = start_tls_gateway(TLS_FLAGS)
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))
        with grpc.secure_channel(f"localhost:{gw.grpc_port}", creds) as ch:
            assert len(list_routes(ch).routes) > 0
        # Plaintext gRPC on a TLS port gets no answer.
        with grpc.insecure_channel(f"127.0.0.1:{gw.grpc_port}") as ch:
            with pytest.raises(grpc.RpcError) as e:
                list_routes(ch)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        ctx = https_context()
        assert https_get(gw.admin_port, "/health", ctx)[0] == 200
        status, body = https_get(gw.admin_port, "/metrics", ctx)
        assert status == 200
        m = parse_metrics(body.decode())
        assert metric(m, "wsgate_tls_certificate_expiry_timestamp_seconds",
                      certificate="control") == not_after("control.pem")
        # Plain HTTP on the TLS admin port: no HTTP answer.
        with socket.create_connection(("127.0.0.1", gw.admin_port), timeout=5) as s:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                got = s.recv(4096)
            except ConnectionResetError:
                got = b""
            assert not got.startswith(b"HTTP/1.1 200")
        # The Connect API (the admin port's async path) over TLS too.
        import http.client
        conn = http.client.HTTPSConnection("localhost", gw.admin_port, timeout=5, context=ctx)
        conn.request("POST", "/wsgate.v1.RouteService/ListRoutes", body=b"{}",
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        assert resp.status == 200 and "routes" in json.loads(resp.read())
        conn.close()
    finally:
        gw.stop()
        gw.tmp.cleanup()


def test_mutual_tls_requires_a_client_certificate_on_both_ports():
    gw = start_tls_gateway(MTLS_FLAGS, client_cert=True)
    try:
        with_cert = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"),
                                                 private_key=read("client.key"),
                                                 certificate_chain=read("client.pem"))
        with grpc.secure_channel(f"localhost:{gw.grpc_port}", with_cert) as ch:
            assert len(list_routes(ch).routes) > 0
        without = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))
        with grpc.secure_channel(f"localhost:{gw.grpc_port}", without) as ch:
            with pytest.raises(grpc.RpcError) as e:
                list_routes(ch)
            assert e.value.code() == grpc.StatusCode.UNAVAILABLE
        assert https_get(gw.admin_port, "/metrics", https_context(client_cert=True))[0] == 200
        assert https_get(gw.admin_port, "/health", https_context(client_cert=True))[0] == 200
        for path in ("/metrics", "/health"):
            with pytest.raises((ssl.SSLError, ConnectionResetError, BrokenPipeError)):
                https_get(gw.admin_port, path, https_context(client_cert=False))
        # The process keeps serving after refusing.
        assert https_get(gw.admin_port, "/health", https_context(client_cert=True))[0] == 200
    finally:
        gw.stop()
        gw.tmp.cleanup()


def test_bad_certificate_files_are_refused_at_start_naming_the_field_and_path():
    missing = cert("nope.pem")
    cases = [
        (["--control-tls-cert", missing, "--control-tls-key", cert("control.key")],
         f"--control-tls-cert '{missing}': cannot read"),
        (["--control-tls-cert", cert("control.pem"), "--control-tls-key", cert("client.key")],
         f"--control-tls-key '{cert('client.key')}': private key does not match"),
        (["--control-tls-cert", cert("control.key"), "--control-tls-key", cert("control.key")],
         f"--control-tls-cert '{cert('control.key')}': not a PEM certificate"),
        (["--control-tls-cert", cert("control.pem")], "--control-tls-cert: a TLS certificate needs its key"),
        (MTLS_FLAGS[:4] + ["--control-client-ca", missing], f"--control-client-ca '{missing}': cannot read"),
        (["--control-client-ca", cert("ca.pem")], "mutual TLS needs --control-tls-cert"),
    ]
    for args, expected in cases:
        gw = Gateway(args=args)
        gw.start(wait=False)
        try:
            assert gw.wait_exit(20) == 2, gw.output()
            assert expected in gw.output(), (expected, gw.output())
        finally:
            gw.stop()
            gw.tmp.cleanup()


leaf("rotated", "localhost", "DNS:localhost,IP:127.0.0.1", 23)


def served_certificate(port):
    """The DER certificate a new TLS connection to 127.0.0.1:port is given (h2 offered, as gRPC
    wants it; the admin port takes the same handshake)."""
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(binary_form=True)


def der(name):
    return ssl.PEM_cert_to_DER_cert(read(name).decode())


def test_certificates_are_reloaded_on_sighup_and_on_change_without_dropping_connections():
    import http.client
    import signal
    work = tempfile.mkdtemp(prefix="wsgate-tls-reload-")
    crt, key = os.path.join(work, "tls.crt"), os.path.join(work, "tls.key")

    def install(c, k):
        # As a Secret update lands: whole new files, renamed into place.
        for src, dst in ((c, crt), (k, key)):
            with open(dst + ".new", "wb") as f:
                f.write(read(src))
            os.replace(dst + ".new", dst)

    install("control.pem", "control.key")
    gw = start_tls_gateway(["--control-tls-cert", crt, "--control-tls-key", key])
    try:
        assert served_certificate(gw.admin_port) == der("control.pem")
        assert served_certificate(gw.grpc_port) == der("control.pem")
        ctx = https_context()
        kept = http.client.HTTPSConnection("localhost", gw.admin_port, timeout=5, context=ctx)
        kept.request("GET", "/health")
        assert kept.getresponse().read() is not None

        install("rotated.pem", "rotated.key")
        gw.signal(signal.SIGHUP)
        # The admin port at once; gRPC re-reads the same files on its own poll (5 s).
        wait_for(lambda: served_certificate(gw.admin_port) == der("rotated.pem"), 10,
                 what="the admin port serving the rotated certificate")
        wait_for(lambda: served_certificate(gw.grpc_port) == der("rotated.pem"), 15,
                 what="gRPC serving the rotated certificate")
        # A keep-alive connection made before the reload goes on with its own session.
        kept.request("GET", "/health")
        assert kept.getresponse().status == 200
        kept.close()
        m = parse_metrics(https_get(gw.admin_port, "/metrics", ctx)[1].decode())
        assert metric(m, "wsgate_tls_certificate_expiry_timestamp_seconds",
                      certificate="control") == not_after("rotated.pem")
        assert gw.proc.poll() is None  # SIGHUP is not a stop

        # A rotation that goes wrong (the key of another certificate) is refused and logged;
        # the rotated certificate keeps serving on both ports.
        install("rotated.pem", "control.key")
        gw.signal(signal.SIGHUP)
        wait_for(lambda: "control certificate not reloaded" in gw.output(), 10,
                 what="the refused reload logged")
        assert f"--control-tls-key '{key}': private key does not match" in gw.output()
        time.sleep(6)  # past gRPC's own poll of the files
        assert served_certificate(gw.admin_port) == der("rotated.pem")
        assert served_certificate(gw.grpc_port) == der("rotated.pem")
        creds = grpc.ssl_channel_credentials(root_certificates=read("ca.pem"))
        with grpc.secure_channel(f"localhost:{gw.grpc_port}", creds) as ch:
            assert len(list_routes(ch).routes) > 0

        # Without any signal, a change is picked up by the poll (a Kubernetes Secret rotation).
        install("control.pem", "control.key")
        wait_for(lambda: served_certificate(gw.admin_port) == der("control.pem"), 15,
                 what="the admin port back on the first certificate without a signal")
        wait_for(lambda: served_certificate(gw.grpc_port) == der("control.pem"), 15,
                 what="gRPC back on the first certificate")
        assert "control certificate reloaded" in gw.output()
    finally:
        gw.stop()
        gw.tmp.cleanup()


def test_check_config_loads_the_server_blocks_tls_files():
    tmp = tempfile.mkdtemp(prefix="wsgate-tls-check-")
    good = os.path.join(tmp, "good.yaml")
    bad = os.path.join(tmp, "bad.yaml")
    routes = "routes:\n  - name: echo\n    path: /echo\n    echo: {}\n"
    with open(good, "w") as f:
        f.write(f"server:\n  control_tls_cert: {cert('control.pem')}\n"
                f"  control_tls_key: {cert('control.key')}\n"
                f"  control_client_ca: {cert('ca.pem')}\n{routes}")
    with open(bad, "w") as f:
        f.write(f"server:\n  control_tls_cert: {cert('control.pem')}\n"
                f"  control_tls_key: {cert('upstream.key')}\n{routes}")
    code, out = run_wsgate(["--check-config", good])
    assert code == 0, out
    code, out = run_wsgate(["--check-config", bad])
    assert code == 1, out
    assert f"server.control_tls_key '{cert('upstream.key')}': private key does not match" in out, out


# ----- wss:// upstreams -----

def upstream_ssl(name):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert(f"{name}.pem"), cert(f"{name}.key"))
    return ctx


class WssUpstream:
    """A websockets server with TLS: echoes, and closes with 4001 on "!close"."""

    def __init__(self, name="upstream"):
        self.port = free_port()
        self.ctx = upstream_ssl(name)
        self.closed = []

    async def handler(self, ws, path=None):
        try:
            async for msg in ws:
                if msg == "!close":
                    await ws.close(4001, "upstream says bye")
                    break
                await ws.send(msg)
        finally:
            self.closed.append((ws.close_code, ws.close_reason))

    async def __aenter__(self):
        self.server = await websockets.serve(self.handler, "127.0.0.1", self.port, ssl=self.ctx,
                                             compression=None)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


def wss_config(port, stranger_port, silent_port):
    ca = cert("ca.pem")
    return f"""
routes:
  - name: wss-silent
    path: /wss/silent
    websocket:
      upstreams: ["wss://localhost:{silent_port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}"}}
      connect_timeout_ms: 500
  - name: wss-ca
    path: /wss/ca
    websocket:
      upstreams: ["wss://localhost:{port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}"}}
  - name: wss-system
    path: /wss/system
    websocket:
      upstreams: ["wss://localhost:{port}/"]
  - name: wss-ip-named
    path: /wss/ip-named
    websocket:
      upstreams: ["wss://127.0.0.1:{port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}", server_name: localhost}}
  - name: wss-ip
    path: /wss/ip
    websocket:
      upstreams: ["wss://127.0.0.1:{port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}"}}
  - name: wss-wrong-name
    path: /wss/wrong-name
    websocket:
      upstreams: ["wss://localhost:{port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}", server_name: other.example}}
  - name: wss-stranger
    path: /wss/stranger
    websocket:
      upstreams: ["wss://localhost:{stranger_port}/"]
      tls: {{verify: VERIFY_CA_FILE, ca_file: "{ca}"}}
"""


@pytest.fixture(scope="module")
def wss_gw():
    port, stranger_port, silent_port = free_port(), free_port(), free_port()
    with Gateway(config_yaml=wss_config(port, stranger_port, silent_port)) as gw:
        gw.upstream_port, gw.stranger_port, gw.silent_port = port, stranger_port, silent_port
        yield gw


def scrape(gw):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", gw.admin_port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return parse_metrics(text)


def tls_failures(gw, route):
    return metric(scrape(gw), "wsgate_connections_total", route=route, outcome="upstream_tls_error")


def test_wss_upstream_relays_both_ways_and_closes(wss_gw):
    async def go():
        up = WssUpstream()
        up.port = wss_gw.upstream_port
        async with up:
            for path in ("/wss/ca", "/wss/ip-named"):
                async with connect(wss_gw.url(path)) as ws:
                    for size in (5, 300, 70000):  # one record, several records, a large frame
                        text = "x" * size
                        await ws.send(text)
                        assert await asyncio.wait_for(ws.recv(), 10) == text
                    await ws.send(b"\x00\x01binary")
                    assert await asyncio.wait_for(ws.recv(), 10) == b"\x00\x01binary"
                    await ws.close(1000, "client done")
                    assert ws.close_code == 1000
                # Polled without blocking the loop: the upstream's handler runs on this same loop.
                for _ in range(200):
                    if up.closed:
                        break
                    await asyncio.sleep(0.05)
                assert up.closed, "the upstream did not see the close within 10 s"
                assert up.closed.pop() == (1000, "client done")
            # A close from the upstream reaches the client with its code and reason.
            async with connect(wss_gw.url("/wss/ca")) as ws:
                await ws.send("!close")
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    await asyncio.wait_for(ws.recv(), 10)
                assert (ws.close_code, ws.close_reason) == (4001, "upstream says bye")
    asyncio.run(go())


def refusal(gw, path):
    """(status, body) of a raw upgrade request the gateway refuses."""
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                   "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.mark.parametrize("path,route,why", [
    ("/wss/system", "wss-system", "unable to get local issuer certificate"),
    ("/wss/ip", "wss-ip", "IP address mismatch"),
    ("/wss/wrong-name", "wss-wrong-name", "hostname mismatch"),
    ("/wss/stranger", "wss-stranger", "unable to get local issuer certificate"),
])
def test_wss_upstream_that_fails_verification_is_502_counted_and_logged(wss_gw, path, route, why):
    async def go():
        up = WssUpstream("stranger" if route == "wss-stranger" else "upstream")
        up.port = wss_gw.stranger_port if route == "wss-stranger" else wss_gw.upstream_port
        async with up:
            before = tls_failures(wss_gw, route)
            status, body = await asyncio.get_running_loop().run_in_executor(
                None, refusal, wss_gw, path)
            assert status == 502
            assert body == b"upstream TLS handshake failed\n"
            assert tls_failures(wss_gw, route) == before + 1
            assert up.closed == []  # no WebSocket connection reached the upstream
    asyncio.run(go())
    line = wait_for(lambda: [l for l in wss_gw.output().splitlines()
                             if f"route {route}: upstream" in l and "TLS handshake failed" in l],
                    what="the log line")
    assert why in line[-1], line[-1]
    # Still serving.
    assert asyncio.run(handshake_status(wss_gw.url("/wss/system"))) == 502


def test_wss_upstream_that_never_finishes_the_tls_handshake_is_504(wss_gw):
    # The connect deadline covers TCP, TLS and the WebSocket handshake together.
    async def go():
        async with silent_upstream(wss_gw.silent_port):
            assert await handshake_status(wss_gw.url("/wss/silent")) == 504
    asyncio.run(go())
    m = scrape(wss_gw)
    assert metric(m, "wsgate_connections_total", route="wss-silent", outcome="upstream_timeout") == 1


def test_wss_route_config_errors_name_the_field():
    tmp = tempfile.mkdtemp(prefix="wsgate-tls-routes-")
    cases = [
        ('["ws://127.0.0.1:1/"]', '{verify: VERIFY_CA_FILE, ca_file: "%s"}' % cert("ca.pem"),
         "routes[0].websocket.tls: only meaningful with a wss:// upstream"),
        ('["wss://127.0.0.1:1/"]', '{verify: VERIFY_CA_FILE, ca_file: "%s"}' % cert("nope.pem"),
         "routes[0].websocket.tls.ca_file: '%s'" % cert("nope.pem")),
        ('["wss://127.0.0.1:1/"]', "{server_name: \"bad name\"}",
         "routes[0].websocket.tls.server_name: 'bad name' is not a host name"),
    ]
    for upstreams, tls, expected in cases:
        path = os.path.join(tmp, "c.yaml")
        with open(path, "w") as f:
            f.write(f"routes:\n  - name: p\n    path: /p\n    websocket:\n"
                    f"      upstreams: {upstreams}\n      tls: {tls}\n")
        code, out = run_wsgate(["--check-config", path])
        assert code == 1 and expected in out, (expected, out)
