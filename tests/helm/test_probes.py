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


def rendered(redis_url):
    ports = {"data": free_port(), "admin": free_port(), "grpc": free_port()}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(VALUES)
    out = helm("template", "rel", CHART, "-f", f.name, "--kube-version", KUBE_VERSIONS[-1],
               "--set", f"redis.url={redis_url}",
               *[a for k, v in ports.items() for a in ("--set", f"ports.{k}={v}")]).stdout
    os.unlink(f.name)
    return [d for d in yaml.safe_load_all(out) if d]


class Pod:
    """The rendered container, run as a local process."""

    def __init__(self, docs, tmp):
        kinds = {}
        for d in docs:
            kinds.setdefault(d["kind"], []).append(d)
        [dep] = kinds["Deployment"]
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
        assert c["command"] == ["wsgate"]
        args = []
        for a in c["args"]:
            if a.startswith("--config="):
                assert a.startswith(f"--config={mount}/")
                a = "--config=" + os.path.join(config_dir, a[len(f"--config={mount}/"):])
            elif a in ("--listen=0.0.0.0", "--grpc-listen=0.0.0.0"):
                a = a.replace("0.0.0.0", "127.0.0.1")
            args.append(a)
        self.argv = [WSGATE_BIN] + args
        self.env = env
        self.ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        self.log = open(os.path.join(tmp, "wsgate.log"), "wb")
        self.proc = subprocess.Popen(self.argv, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     preexec_fn=_die_with_parent)

    def probe(self, kind):
        """What the kubelet gets for startupProbe / livenessProbe / readinessProbe."""
        get = self.container[kind]["httpGet"]
        port = get["port"]
        port = self.ports[port] if isinstance(port, str) else port
        try:
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
