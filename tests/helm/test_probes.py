"""The chart and the binary agree: `helm template` renders the Deployment, and the real wsgate is
started with exactly the container's command, args and env (secretKeyRef resolved from the
rendered Secret), its config file being the rendered ConfigMap's data, as the kubelet would mount
it. Two things are mapped, because this is a test host and not a pod: the ports are chosen free
by rendering the chart with `ports.*` set to free ports (so the args are still the chart's), and
`--listen=0.0.0.0` / `--grpc-listen=0.0.0.0` (the pod's addresses) become 127.0.0.1. Then every
probe in the manifest is requested as the kubelet does (HTTP GET on the named port's
containerPort): all 200 when serving; a Redis outage fails readiness only; SIGTERM fails
readiness while liveness holds through the drain."""

import asyncio
import os
import signal
import subprocess
import tempfile
import base64
import http.client
import ssl

import pytest
import yaml

from wsgate_harness import (RedisServer, WSGATE_BIN, connect, free_port, http_request,
                            wait_for, _die_with_parent)
from test_chart import CHART, KUBE_VERSIONS, helm

VALUES = """
config:
  routes:
    - name: echo
      path: /echo
      echo: {}
    - name: sessions
      path: /{agent_id}/ws/{session_id}
      pubsub: {}
shutdownGracePeriodSecs: 30
"""


def rendered(redis_url, *extra):
    ports = {"data": free_port(), "admin": free_port(), "grpc": free_port()}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(VALUES)
    out = helm("template", "rel", CHART, "-f", f.name, "--kube-version", KUBE_VERSIONS[-1],
               "--set", f"redis.url={redis_url}", *extra,
               *[a for k, v in ports.items() for a in ("--set", f"ports.{k}={v}")]).stdout
    os.unlink(f.name)
    return [d for d in yaml.safe_load_all(out) if d]


def https_request(port, path, method="GET", headers=None, body=None):
    """(status, body) over TLS without verifying the certificate, as the kubelet probes."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=2, context=ctx)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Pod:
    """The rendered container, run as a local process."""

    def __init__(self, docs, tmp, component=None, hosts=None):
        """`component`: which Deployment (split mode has two); `hosts`: Service names the
        container's args use, mapped to local addresses (there is no cluster DNS here)."""
        kinds = {}
        for d in docs:
            kinds.setdefault(d["kind"], []).append(d)
        [dep] = [d for d in kinds["Deployment"] if component is None or
                 d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] ==
                 component]
        os.makedirs(tmp, exist_ok=True)
        self.container = dep["spec"]["template"]["spec"]["containers"][0]
        c = self.container
        config_dir = os.path.join(tmp, "etc-wsgate")
        os.makedirs(config_dir)
        [cm] = kinds["ConfigMap"]
        mount = [m for m in c["volumeMounts"] if m["name"] == "config"][0]["mountPath"]
        for name, data in cm["data"].items():
            with open(os.path.join(config_dir, name), "w") as f:
                f.write(data)
        secrets = {s["metadata"]["name"]: s for s in kinds.get("Secret", [])}
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            else:
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = base64.b64decode(secrets[ref["name"]]["data"][ref["key"]]).decode()
        # Secret volumes, written out as the kubelet projects them (one file per key).
        secret_dirs = {}
        volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"].get("volumes", [])}
        for m in c["volumeMounts"]:
            ref = volumes[m["name"]].get("secret")
            if ref is None:
                continue
            d = os.path.join(tmp, "secret-" + m["name"])
            os.makedirs(d)
            for key, data in secrets[ref["secretName"]]["data"].items():
                with open(os.path.join(d, key), "wb") as f:
                    f.write(base64.b64decode(data))
            secret_dirs[m["mountPath"]] = d
        assert c["command"] == ["wsgate"]
        args = []
        for a in c["args"]:
            if a.startswith("--config="):
                assert a.startswith(f"--config={mount}/")
                a = "--config=" + os.path.join(config_dir, a[len(f"--config={mount}/"):])
            elif a in ("--listen=0.0.0.0", "--grpc-listen=0.0.0.0"):
                a = a.replace("0.0.0.0", "127.0.0.1")
            else:
                for path, d in secret_dirs.items():
                    a = a.replace(f"={path}/", f"={d}/")
                for host, local in (hosts or {}).items():
                    a = a.replace(f"={host}", f"={local}")
            args.append(a)
        self.argv = [WSGATE_BIN] + args
        self.env = env
        self.ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.log = open(os.path.join(tmp, "wsgate.log"), "wb")
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)

    def probe(self, kind):
        """What the kubelet gets for startupProbe / livenessProbe / readinessProbe (over HTTPS
        the kubelet does not verify the certificate)."""
        get = self.container[kind]["httpGet"]
        port = get["port"]
        port = self.ports[port] if isinstance(port, str) else port
        try:
            if get.get("scheme", "HTTP") == "HTTPS":
                return https_request(port, get["path"])[0]
            return http_request(port, get["path"], timeout=2)[0]
        except OSError:
            return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture
def redis():
    with RedisServer() as r:
        yield r


@pytest.fixture
def pod(redis, tmp_path):
    p = Pod(rendered(redis.url), str(tmp_path))
    try:
        yield p
    finally:
        p.stop()


def test_probes_pass_on_the_rendered_container(pod):
    assert {"data", "admin", "grpc"} == set(pod.ports)
    wait_for(lambda: pod.probe("startupProbe") == 200, 20, what="startup probe")
    wait_for(lambda: pod.probe("readinessProbe") == 200, 10, what="readiness probe")
    assert pod.probe("livenessProbe") == 200
    # The rendered ports are the ones the binary serves: WebSocket on data.
    async def echo():
        async with connect(f"ws://127.0.0.1:{pod.ports['data']}/echo") as ws:
            await ws.send("k8s")
            return await ws.recv()
    assert asyncio.run(echo()) == "k8s"
    assert http_request(pod.ports["data"], "/ready")[0] == 200


def test_redis_outage_fails_readiness_not_liveness(pod, redis):
    wait_for(lambda: pod.probe("readinessProbe") == 200, 20, what="ready")
    redis.stop()
    wait_for(lambda: pod.probe("readinessProbe") == 503, 15, what="readiness 503 without Redis")
    assert pod.probe("livenessProbe") == 200  # the kubelet must not restart the pod
    redis.start()
    wait_for(lambda: pod.probe("readinessProbe") == 200, 20, what="readiness back with Redis")


def test_sigterm_fails_readiness_and_liveness_holds_through_the_drain(pod):
    wait_for(lambda: pod.probe("readinessProbe") == 200, 20, what="ready")
    assert pod.env["SHUTDOWN_GRACE_PERIOD_SECS"] == "30"

    async def drain():
        async with connect(f"ws://127.0.0.1:{pod.ports['data']}/echo") as ws:
            await ws.send("x")
            await ws.recv()
            pod.proc.send_signal(signal.SIGTERM)
            # The open client keeps the 30 s drain going while we probe.
            wait_for(lambda: pod.probe("readinessProbe") == 503, 10, what="readiness 503")
            assert pod.probe("livenessProbe") == 200
            assert pod.proc.poll() is None
            pod.proc.send_signal(signal.SIGTERM)  # a second signal ends the grace period
            await asyncio.wait_for(ws.wait_closed(), 20)
            return ws.close_code
    assert asyncio.run(drain()) == 1001
    assert pod.proc.wait(20) == 0


def self_signed(tmp):
    key, crt = os.path.join(tmp, "k.pem"), os.path.join(tmp, "c.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", crt, "-days", "30", "-subj", "/CN=wsgate-chart",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return open(crt).read(), open(key).read()


def test_tls_and_tokens_in_values_reach_the_binary(redis, tmp_path):
    """tls.* puts the control-plane certificate on the admin (and gRPC) port, the probes follow
    it to HTTPS; adminTokens.* becomes the binary's token file, so the admin API needs a token."""
    cert, key = self_signed(str(tmp_path))
    docs = rendered(redis.url, "--set", "tls.enabled=true", "--set-string", f"tls.cert={cert}",
                    "--set-string", f"tls.key={key}", "--set", "adminTokens.tokens.ops=admin:s3cret-s3cret-s3cret",
                    "--set", "adminTokens.tokens.eyes=viewer:l00k-l00k-l00k-l00k")
    p = Pod(docs, str(tmp_path / "pod"))
    try:
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            assert p.container[kind]["httpGet"]["scheme"] == "HTTPS"
        wait_for(lambda: p.probe("startupProbe") == 200, 20, what="startup probe over HTTPS")
        assert p.probe("readinessProbe") == 200 and p.probe("livenessProbe") == 200
        admin = p.ports["admin"]
        with pytest.raises((OSError, http.client.HTTPException)):
            http_request(admin, "/health", timeout=2)  # plaintext is not served any more
        call = ("POST", "/wsgate.v1.InventoryService/GetInventory")
        json_headers = {"Content-Type": "application/json"}
        assert https_request(admin, call[1], call[0], json_headers, b"{}")[0] == 401
        for token in ("s3cret-s3cret-s3cret", "l00k-l00k-l00k-l00k"):
            status, body = https_request(admin, call[1], call[0],
                                         {**json_headers, "Authorization": f"Bearer {token}"}, b"{}")
            assert status == 200, body
        status, body = https_request(admin, "/metrics")
        assert status == 200
        assert b'wsgate_tls_certificate_expiry_timestamp_seconds{certificate="control"}' in body
    finally:
        p.stop()


def test_split_mode_data_plane_reaches_its_control_plane_with_the_charts_tls_and_token(redis,
                                                                                     tmp_path):
    """Both rendered containers of split mode, run as processes: the data plane dials the control
    plane with the chart's CA (tls.ca) and the token entry it names (adminTokens.dataplaneToken),
    and serves the routes of the chart's config."""
    tmp = str(tmp_path)
    key, crt, ca_key, ca = (os.path.join(tmp, n) for n in ("k.pem", "c.pem", "cak.pem", "ca.pem"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    subprocess.run(["openssl", "req", "-x509", *ec, "-keyout", ca_key, "-out", ca, "-days", "3",
                    "-subj", "/CN=chart-ca"], check=True, capture_output=True)
    csr = os.path.join(tmp, "c.csr")
    subprocess.run(["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=localhost"],
                   check=True, capture_output=True)
    ext = os.path.join(tmp, "ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,DNS:rel-wsgate-controlplane,IP:127.0.0.1\n"
                "extendedKeyUsage=serverAuth,clientAuth\n")
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key,
                    "-CAcreateserial", "-out", crt, "-days", "3", "-extfile", ext],
                   check=True, capture_output=True)
    values = ("--set", "mode=split", "--set", "tls.enabled=true",
              "--set-string", f"tls.cert={open(crt).read()}",
              "--set-string", f"tls.key={open(key).read()}",
              "--set-string", f"tls.ca={open(ca).read()}",
              "--set", "adminTokens.tokens.ops=admin:s3cret-s3cret-s3cret",
              "--set", "adminTokens.tokens.planes=admin:pl4nes-pl4nes-pl4nes",
              "--set", "adminTokens.dataplaneToken=planes")
    # Two pods have two network namespaces; one host has one: each pod gets its own render with
    # its own free ports, and the data plane's Service address maps to the control plane's.
    cp_docs, dp_docs = rendered(redis.url, *values), rendered(redis.url, *values)
    cp = Pod(cp_docs, os.path.join(tmp, "cp"), component="controlplane")
    cp_grpc = cp.ports["grpc"]
    dp = None
    try:
        wait_for(lambda: cp.probe("readinessProbe") == 200, 20, what="control plane ready")
        # The data plane dials the control plane's Service name; here its address (the
        # certificate carries IP:127.0.0.1; a name would go through gRPC's c-ares resolver,
        # whose few bytes still held at exit LeakSanitizer reports).
        dp_grpc = [a for a in [d for d in dp_docs if d["kind"] == "Deployment"][1]["spec"][
            "template"]["spec"]["containers"][0]["args"] if a.startswith("--control-plane=")]
        assert dp_grpc, "the data plane names its control plane"
        dp = Pod(dp_docs, os.path.join(tmp, "dp"), component="dataplane",
                 hosts={dp_grpc[0].split("=", 1)[1]: f"127.0.0.1:{cp_grpc}"})
        assert "data" in dp.ports and "grpc" not in dp.ports
        wait_for(lambda: dp.probe("readinessProbe") == 200, 20,
                 what="data plane ready: it has the control plane's snapshot")

        async def echo():
            async with connect(f"ws://127.0.0.1:{dp.ports['data']}/echo") as ws:
                await ws.send("split")
                return await ws.recv()
        assert asyncio.run(echo()) == "split"
        status, body = https_request(cp.ports["admin"], "/metrics")
        assert status == 200 and b'wsgate_dataplanes{state="connected"} 1' in body, body[-2000:]
    finally:
        if dp:
            dp.stop()
        cp.stop()
