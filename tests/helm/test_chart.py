"""helm/wsgate with the real helm (built by .ci/install-helm-tools.sh): `helm lint --strict` for
each values scenario, bad values refused by values.schema.json with a message naming the value,
every rendered object validated offline by kubernetes-validate (strict) for two Kubernetes minor
versions, and assertions on what matters in the rendered YAML."""

import base64
import glob
import hashlib
import os
import subprocess

import pytest
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CHART = os.path.join(REPO, "helm", "wsgate")
TOOLS = os.environ.get("WSGATE_TOOLS_DIR", os.path.join(REPO, ".tools"))
HELM = os.path.join(TOOLS, "bin", "helm")
KV = os.path.join(TOOLS, "kv", "bin", "kubernetes-validate")
KUBE_VERSIONS = ["1.30.0", "1.34.0"]
SCENARIOS = {"default": []}
SCENARIOS.update({os.path.basename(f)[:-len("-values.yaml")]: ["-f", f]
                  for f in sorted(glob.glob(os.path.join(CHART, "ci", "*-values.yaml")))})
# Custom resources (ServiceMonitor, PrometheusRule) have no schema in kubernetes-validate.
CRDS = {"ServiceMonitor", "PrometheusRule"}


def helm(*args, check=True):
    p = subprocess.run([HELM, *args], capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, p.stdout + p.stderr
    return p


def render(*args):
    # A `go install` build of helm assumes Kubernetes 1.20 for `template` (no ldflags).
    if "--kube-version" not in args:
        args = (*args, "--kube-version", KUBE_VERSIONS[-1])
    out = helm("template", "rel", CHART, "--namespace", "ns", *args).stdout
    return [d for d in yaml.safe_load_all(out) if d], out


def test_scenarios_cover_the_issue():
    assert set(SCENARIOS) == {"default", "split", "tls", "monitoring", "ingress"}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lint_strict(scenario):
    p = helm("lint", "--strict", CHART, *SCENARIOS[scenario])
    assert "0 chart(s) failed" in p.stdout


@pytest.mark.parametrize("bad", sorted(glob.glob(os.path.join(os.path.dirname(__file__),
                                                               "bad-values", "*.yaml"))))
def test_schema_refuses_bad_values(bad):
    p = helm("template", "rel", CHART, "-f", bad, "--kube-version", KUBE_VERSIONS[-1], check=False)
    assert p.returncode != 0, p.stdout
    assert "values don't meet the specifications of the schema" in p.stderr, p.stderr
    # The message names the offending value.
    key = {"mode": "mode", "port": "data", "unknown-key": "replicas", "redis-url": "url",
           "service-type": "type", "grace-type": "shutdownGracePeriodSecs"}[
        os.path.basename(bad)[:-5]]
    assert key in p.stderr, p.stderr


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("kube", KUBE_VERSIONS)
def test_kubernetes_validate_strict(scenario, kube, tmp_path):
    docs, _ = render(*SCENARIOS[scenario], "--kube-version", kube)
    files = []
    for i, d in enumerate(docs):
        if d["kind"] in CRDS:
            continue
        f = tmp_path / f"{i}-{d['kind']}.yaml"
        f.write_text(yaml.safe_dump(d))
        files.append(str(f))
    assert files
    p = subprocess.run([KV, "--strict", "-k", kube, *files], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.count(" passed for resource ") == len(files), p.stdout


def test_kubernetes_validate_catches_a_wrong_field(tmp_path):
    # The validator really checks: an unknown field in the rendered Deployment is refused.
    docs, _ = render()
    dep = by_kind(docs, "Deployment")[0]
    dep["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = {}
    f = tmp_path / "dep.yaml"
    f.write_text(yaml.safe_dump(dep))
    p = subprocess.run([KV, "--strict", "-k", KUBE_VERSIONS[0], str(f)], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode != 0 and "livenessProbes" in p.stdout + p.stderr, p.stdout + p.stderr


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def test_default_renders_one_deployment_with_probes_and_security():
    docs, _ = render()
    deps = by_kind(docs, "Deployment")
    assert len(deps) == 1
    pod = deps[0]["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "admin", "scheme": "HTTP"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/health", "port": "admin", "scheme": "HTTP"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin", "scheme": "HTTP"}
    assert {p["name"] for p in c["ports"]} == {"data", "admin", "grpc"}
    sc = c["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"] is True
    psc = pod["spec"]["securityContext"]
    assert psc["seccompProfile"]["type"] == "RuntimeDefault" and psc["runAsNonRoot"] is True
    assert not any(a.startswith("--role") for a in c["args"])
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SHUTDOWN_GRACE_PERIOD_SECS"] == "10"
    assert "REDIS_URL" not in env  # no Redis configured: the in-memory bus
    # preStop sleep + grace + margin: a rolling update drains clients with 1001.
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "5"]
    assert pod["spec"]["terminationGracePeriodSeconds"] == 5 + 10 + 5


def test_grace_values_move_together():
    docs, _ = render("--set", "shutdownGracePeriodSecs=40", "--set", "preStopSleepSecs=3")
    pod = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 48
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    assert env["SHUTDOWN_GRACE_PERIOD_SECS"] == "40"
    cm = by_kind(docs, "ConfigMap")[0]
    assert yaml.safe_load(cm["data"]["wsgate.yaml"])["server"]["shutdown_grace_ms"] == 40000


def test_checksum_annotation_follows_the_config():
    docs, _ = render()
    cm = by_kind(docs, "ConfigMap")[0]
    ann = by_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
    assert len(ann["checksum/config"]) == 64
    docs2, _ = render("--set-json",
                      'config={"routes":[{"name":"echo","path":"/other","echo":{}}]}')
    ann2 = by_kind(docs2, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
    assert ann2["checksum/config"] != ann["checksum/config"]
    docs3, _ = render("--set", "replicaCount=5")
    ann3 = by_kind(docs3, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"]
    assert ann3["checksum/config"] == ann["checksum/config"]
    assert "/echo" in cm["data"]["wsgate.yaml"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_selectors_match_pod_labels(scenario):
    docs, _ = render(*SCENARIOS[scenario])
    pods = [d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")]
    for d in by_kind(docs, "Deployment"):
        sel = d["spec"]["selector"]["matchLabels"]
        assert sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    for s in by_kind(docs, "Service"):
        sel = s["spec"]["selector"]
        matched = [p for p in pods if sel.items() <= p.items()]
        assert matched, (s["metadata"]["name"], sel)
        for port in s["spec"]["ports"]:
            named = [c for d in by_kind(docs, "Deployment")
                     if sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()
                     for c in d["spec"]["template"]["spec"]["containers"][0]["ports"]
                     if c["name"] == port["targetPort"]]
            assert named, (s["metadata"]["name"], port)
    for p in by_kind(docs, "PodDisruptionBudget"):
        assert any(p["spec"]["selector"]["matchLabels"].items() <= l.items() for l in pods)
    names = {d["metadata"]["name"] for d in by_kind(docs, "Deployment")}
    for h in by_kind(docs, "HorizontalPodAutoscaler"):
        assert h["spec"]["scaleTargetRef"]["name"] in names


def test_split_renders_control_and_data_planes():
    docs, _ = render(*SCENARIOS["split"])
    deps = {d["metadata"]["labels"]["app.kubernetes.io/component"]: d
            for d in by_kind(docs, "Deployment")}
    assert set(deps) == {"controlplane", "dataplane"}
    cp = deps["controlplane"]["spec"]["template"]["spec"]["containers"][0]
    dp = deps["dataplane"]["spec"]["template"]["spec"]["containers"][0]
    assert "--role=controlplane" in cp["args"]
    assert "--role=dataplane" in dp["args"]
    assert "--control-plane=rel-wsgate-controlplane:50051" in dp["args"]
    control = [s for s in by_kind(docs, "Service") if s["metadata"]["name"] ==
               "rel-wsgate-controlplane"]
    assert control and control[0]["spec"]["selector"]["app.kubernetes.io/component"] == \
        "controlplane"
    assert deps["dataplane"]["spec"]["replicas"] == 3
    assert any(e["name"] == "REDIS_URL" for e in dp["env"])


def test_tls_and_tokens_secrets():
    docs, _ = render(*SCENARIOS["tls"])
    secrets = {s["metadata"]["name"]: s for s in by_kind(docs, "Secret")}
    assert secrets["rel-wsgate-tls"]["type"] == "kubernetes.io/tls"
    # The entries become the binary's token file, passed with --admin-token-file.
    tokens = secrets["rel-wsgate-admin-tokens"]["data"]
    assert base64.b64decode(tokens["tokens"]) == b"admin s3cret-s3cret-s3cret\n"
    args = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--admin-token-file=/etc/wsgate-secrets/admin-tokens/tokens" in args
    assert "--control-tls-cert=/etc/wsgate-secrets/tls/tls.crt" in args
    assert "--control-tls-key=/etc/wsgate-secrets/tls/tls.key" in args
    docs, _ = render("--set", "tls.enabled=true", "--set", "tls.existingSecret=mine",
                     "--set", "redis.existingSecret=r")
    assert not by_kind(docs, "Secret")
    vols = by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "tls", "secret": {"secretName": "mine"}} in vols
    p = helm("template", "rel", CHART, "--set", "tls.enabled=true", "--kube-version",
             KUBE_VERSIONS[-1], check=False)
    assert p.returncode != 0 and "tls.cert is required" in p.stderr
    # With TLS the scrape is HTTPS too.
    docs, _ = render(*SCENARIOS["tls"], "--set", "metrics.serviceMonitor.enabled=true")
    [ep] = by_kind(docs, "ServiceMonitor")[0]["spec"]["endpoints"]
    assert ep["scheme"] == "https" and ep["tlsConfig"] == {"insecureSkipVerify": True}
    docs, _ = render(*SCENARIOS["monitoring"])
    [ep] = by_kind(docs, "ServiceMonitor")[0]["spec"]["endpoints"]
    assert "scheme" not in ep
    # A token entry the binary would refuse fails the render, naming the entry.
    for bad in ("s3cret-s3cret-s3cret", "root:s3cret-s3cret-s3cret", "admin:short",
                "admin:has space in it x"):
        p = helm("template", "rel", CHART, "--set-string", f"adminTokens.tokens.ops={bad}",
                 "--kube-version", KUBE_VERSIONS[-1], check=False)
        assert p.returncode != 0 and "adminTokens.tokens.ops: must be" in p.stderr, bad


def test_monitoring_objects():
    docs, _ = render(*SCENARIOS["monitoring"], "--set",
                     "metrics.prometheusRule.runbookBaseUrl=https://example.org/wsgate/")
    rule = by_kind(docs, "PrometheusRule")[0]
    plain = yaml.safe_load(open(os.path.join(CHART, "rules", "wsgate.rules.yaml")))
    assert [r["alert"] for r in rule["spec"]["groups"][0]["rules"]] == \
        [r["alert"] for r in plain["groups"][0]["rules"]]
    assert all(r["annotations"]["runbook_url"].startswith(
        "https://example.org/wsgate/docs/runbooks.md#") for r in rule["spec"]["groups"][0]["rules"])
    dash = [c for c in by_kind(docs, "ConfigMap") if c["metadata"]["name"] == "rel-wsgate-dashboard"][0]
    assert dash["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dash["data"]["wsgate.json"] == open(
        os.path.join(CHART, "dashboards", "wsgate.json")).read().rstrip("\n")
    sm = by_kind(docs, "ServiceMonitor")[0]
    metrics_svc = [s for s in by_kind(docs, "Service")
                   if sm["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()]
    assert len(metrics_svc) == 1 and metrics_svc[0]["spec"]["ports"][0]["name"] == "admin"
    assert by_kind(docs, "NetworkPolicy") and by_kind(docs, "HorizontalPodAutoscaler")
    assert "replicas" not in by_kind(docs, "Deployment")[0]["spec"]  # the HPA owns it


def test_ingress_websocket_timeouts():
    docs, _ = render(*SCENARIOS["ingress"])
    ing = by_kind(docs, "Ingress")[0]
    assert ing["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-read-timeout"] == "3600"
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"] == \
        {"name": "rel-wsgate", "port": {"name": "data"}}
    assert not by_kind(render()[0], "Ingress")


def test_readme_lists_every_value():
    values = yaml.safe_load(open(os.path.join(CHART, "values.yaml")))
    readme = open(os.path.join(CHART, "README.md")).read()
    documented = {line.split("|")[1].strip().strip("`") for line in readme.splitlines()
                  if line.startswith("| `")}

    def leaves(prefix, node):
        for k, v in node.items():
            key = prefix + k
            if key in documented:
                continue
            assert isinstance(v, dict) and v, f"{key} is not in the chart README's values table"
            leaves(key + ".", v)
    leaves("", values)
