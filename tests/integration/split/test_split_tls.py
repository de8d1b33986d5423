"""The split deployment's stream over TLS: a data plane dials a control plane that serves
--control-tls-cert with --control-plane-ca, and under mutual TLS (--control-client-ca on the
control plane) presents its own --control-tls-cert/--control-tls-key as the client certificate.
Certificates are made at test time by the openssl CLI; everything runs on loopback."""

import asyncio
import os
import ssl
import subprocess
import tempfile
import time
import http.client

import grpc

from split_cluster import (echo_route, metric, roundtrip, stop_all, stubs, wait_for)
from wsgate_harness import Gateway, parse_metrics

CERTS = tempfile.mkdtemp(prefix="wsgate-split-tls-")
EC = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"


def sh(cmd):
    subprocess.run(cmd, shell=True, cwd=CERTS, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


for ca in ("ca", "other-ca"):
    sh(f"openssl req -x509 {EC} -keyout {ca}.key -out {ca}.pem -days 3 -subj /CN=split-{ca}")
for name, ca in (("cp", "ca"), ("dp", "ca"), ("dp-stranger", "other-ca")):
    sh(f"openssl req {EC} -keyout {name}.key -out {name}.csr -subj /CN=localhost")
    with open(os.path.join(CERTS, f"{name}.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    sh(f"openssl x509 -req -in {name}.csr -CA {ca}.pem -CAkey {ca}.key -CAcreateserial "
       f"-out {name}.pem -days 3 -extfile {name}.ext")


def cert(name):
    return os.path.join(CERTS, name)


def https(port, path):
    ctx = ssl.create_default_context(cafile=cert("ca.pem"))
    ctx.load_cert_chain(cert("dp.pem"), cert("dp.key"))  # accepted where a client cert is asked
    conn = http.client.HTTPSConnection("localhost", port, timeout=3, context=ctx)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read()
    finally:
        conn.close()


def tls_control_plane(tmp, mutual):
    args = ["--role=controlplane", "--control-tls-cert", cert("cp.pem"),
            "--control-tls-key", cert("cp.key")]
    if mutual:
        args += ["--control-client-ca", cert("ca.pem")]
    cp = Gateway("routes:\n  - name: echo\n    path: /echo\n    echo: {}\n",
                 state_dir=os.path.join(tmp, "cp"), args=args, workers=1)
    cp.start(wait=False)
    wait_for(lambda: _status(lambda: https(cp.admin_port, "/ready")) == 200, 20,
             what="the control plane ready over https")
    return cp


def _status(call):
    try:
        return call()[0]
    except (OSError, ssl.SSLError):
        return None


def tls_data_plane(cp, tmp, name, extra):
    dp = Gateway(None, state_dir=os.path.join(tmp, name), workers=1,
                 args=["--role=dataplane", "--control-plane", f"127.0.0.1:{cp.grpc_port}",
                       "--dataplane-id", name, *extra])
    dp.start(wait=False)
    return dp


def dp_metrics(dp, tls_admin):
    if tls_admin:
        body = https(dp.admin_port, "/metrics")[1]
    else:
        conn = http.client.HTTPConnection("127.0.0.1", dp.admin_port, timeout=3)
        conn.request("GET", "/metrics")
        body = conn.getresponse().read()
        conn.close()
    return parse_metrics(body.decode())


def put_route(cp, route):
    s = stubs()
    creds = grpc.ssl_channel_credentials(root_certificates=open(cert("ca.pem"), "rb").read(),
                                         private_key=open(cert("dp.key"), "rb").read(),
                                         certificate_chain=open(cert("dp.pem"), "rb").read())
    with grpc.secure_channel(f"localhost:{cp.grpc_port}", creds) as ch:
        return s.route_grpc.RouteServiceStub(ch).PutRoute(
            s.route.PutRouteRequest(route=route), timeout=10).config_version


def connected(dp, tls_admin):
    try:
        return metric(dp_metrics(dp, tls_admin), "wsgate_dataplane_control_plane_connected") == 1
    except (OSError, ssl.SSLError, AssertionError):
        return False


def test_a_data_plane_dials_a_tls_control_plane_with_its_ca(tmp_path):
    tmp = str(tmp_path)
    cp = tls_control_plane(tmp, mutual=False)
    good = tls_data_plane(cp, tmp, "good", ["--control-plane-ca", cert("ca.pem")])
    plain = tls_data_plane(cp, tmp, "plain", [])
    wrong = tls_data_plane(cp, tmp, "wrong", ["--control-plane-ca", cert("other-ca.pem")])
    try:
        wait_for(lambda: connected(good, False), 20, what="the data plane with the CA connected")
        v = put_route(cp, echo_route("added", "/added"))
        wait_for(lambda: metric(dp_metrics(good, False), "wsgate_config_version") >= v, 10,
                 what="the change applied over TLS")
        assert asyncio.run(roundtrip(good.url("/added"), "hi")) == "hi"
        assert "over TLS" in good.output()
        # Plaintext against a TLS port, and TLS that does not trust the control plane's CA:
        # neither gets a snapshot, so neither is ready (they keep retrying, with backoff).
        time.sleep(2)
        for dp in (plain, wrong):
            assert not connected(dp, False), dp.output()
            conn = http.client.HTTPConnection("127.0.0.1", dp.admin_port, timeout=3)
            conn.request("GET", "/ready")
            assert conn.getresponse().status == 503
            conn.close()
    finally:
        stop_all([good, plain, wrong, cp])


def test_under_mutual_tls_the_data_plane_presents_its_certificate(tmp_path):
    tmp = str(tmp_path)
    cp = tls_control_plane(tmp, mutual=True)
    mine = ["--control-plane-ca", cert("ca.pem")]
    with_cert = tls_data_plane(cp, tmp, "with-cert", mine + [
        "--control-tls-cert", cert("dp.pem"), "--control-tls-key", cert("dp.key")])
    without = tls_data_plane(cp, tmp, "without", mine)
    stranger = tls_data_plane(cp, tmp, "stranger", mine + [
        "--control-tls-cert", cert("dp-stranger.pem"), "--control-tls-key", cert("dp-stranger.key")])
    try:
        # The data plane's own admin port serves its certificate too (https).
        wait_for(lambda: connected(with_cert, True), 20, what="the data plane with a client cert")
        v = put_route(cp, echo_route("added", "/added"))
        wait_for(lambda: metric(dp_metrics(with_cert, True), "wsgate_config_version") >= v, 10,
                 what="the change applied over mutual TLS")
        time.sleep(2)
        assert not connected(without, False), without.output()
        stranger_ctx_ok = connected(stranger, True)  # its admin port is https with its own cert
        assert not stranger_ctx_ok, stranger.output()
    finally:
        stop_all([with_cert, without, stranger, cp])


def test_a_bad_control_plane_ca_is_refused_at_start_naming_the_flag(tmp_path):
    from wsgate_harness import run_wsgate
    code, out = run_wsgate(["--role=dataplane", "--control-plane", "localhost:1",
                            "--control-plane-ca", cert("nope.pem")])
    assert code == 2 and "--control-plane-ca:" in out, out
    code, out = run_wsgate(["--role=dataplane", "--control-plane", "localhost:1",
                            "--control-plane-ca", cert("ca.key")])
    assert code == 2 and "no PEM certificate" in out, out
    code, out = run_wsgate(["--control-plane-ca", cert("ca.pem")])
    assert code == 2 and "only meaningful with --role=dataplane" in out, out
