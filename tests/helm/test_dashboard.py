"""The Grafana dashboard and the alert rules against a real Prometheus scraping the real wsgate.

wsgate runs on free loopback ports with a config holding every route kind; traffic goes through
each (websocket proxy, echo, http_bridge, external_client, room, pubsub, a limit hit, an upstream
failure); Prometheus (Debian's) scrapes /metrics every second. Then every panel's query, with the
dashboard variables substituted, must return at least one series, every alert expression must
evaluate, and `promtool check metrics` must find nothing to fix in wsgate's /metrics."""

import asyncio
import json
import os
import subprocess
import tempfile
import urllib.parse
import urllib.request

import pytest
import yaml

from wsgate_harness import Gateway, connect, free_port, http_request, wait_for, _die_with_parent

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DASHBOARD = os.path.join(REPO, "helm", "wsgate", "dashboards", "wsgate.json")
RULES = os.path.join(REPO, "helm", "wsgate", "rules", "wsgate.rules.yaml")
PROMETHEUS = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
DEAD_PORT = free_port()  # nothing listens there: the upstream failure

CONFIG = """
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: limited
    path: /limited
    echo: {}
    limits: {max_connections: 1}
  - name: proxy
    path: /proxy
    websocket:
      upstreams: ["ws://127.0.0.1:%(port)d/echo"]
  - name: dead-upstream
    path: /dead
    websocket:
      upstreams: ["ws://127.0.0.1:%(dead)d/x"]
      connect_timeout_ms: 2000
  - name: bridge
    path: /bridge
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
  - name: external
    path: /external/{client_id}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
  - name: room
    path: /room/{client_id}
    room: {}
  - name: pubsub
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
"""


def prom_query(port, expr):
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return json.loads(body)
        except ValueError:  # "Service Unavailable" while Prometheus starts
            return {"status": "unavailable", "body": body.decode(errors="replace")}
    except OSError:
        return {"status": "unreachable"}


async def drive(gw, prom_port):
    async def recv_json(ws):
        return json.loads(await asyncio.wait_for(ws.recv(), 10))

    async with connect(gw.url("/echo")) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
    async with connect(gw.url("/proxy")) as ws:
        await ws.send("through the relay")
        assert await ws.recv() == "through the relay"
    async with connect(gw.url("/limited")):
        with pytest.raises(Exception):  # max_connections: 1, the second one is refused
            async with connect(gw.url("/limited")):
                pass
    with pytest.raises(Exception):  # 502: nothing listens on the upstream port
        async with connect(gw.url("/dead")):
            pass
    async with connect(gw.url("/bridge")) as ws:
        await ws.send(json.dumps({"url": f"http://127.0.0.1:{gw.port}/health", "method": "GET"}))
        assert (await recv_json(ws))["status_code"] == 200
    async with connect(gw.url("/external/c1")) as ws:
        await ws.send(json.dumps({"type": "connect_external",
                                  "url": f"ws://127.0.0.1:{gw.port}/echo"}))
        while (await recv_json(ws)).get("status") != "connected":
            pass
        await ws.send(json.dumps({"type": "send_message", "content": "out"}))
        while (await recv_json(ws)).get("type") != "message_received":
            pass
    async with connect(gw.url("/room/a")) as a, connect(gw.url("/room/b")):
        await a.send("to the room")
        await asyncio.wait_for(a.recv(), 10)
        # The members gauge exists only while members do: keep them until it was scraped.
        wait_for(lambda: prom_query(prom_port, "wsgate_room_members > 0").get("data", {})
                 .get("result"), 20, what="room members scraped")
    async with connect(gw.url("/agent/ws/s1")) as ws:
        await ws.send("up")
        await ws.ping()


def panel_queries():
    dash = json.load(open(DASHBOARD))
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append((p["title"], t["expr"]))
    return dash, out


def substitute(expr, instance):
    return (expr.replace("$__rate_interval", "1m").replace("$job", "wsgate")
            .replace("$instance", instance).replace("$route", ".*"))


@pytest.fixture(scope="module")
def stack():
    port = free_port()
    gw = Gateway(CONFIG % {"port": port, "dead": DEAD_PORT}, env={"REDIS_URL": ""}, workers=1)
    # The proxy route's upstream is the gateway's own /echo: its port must be known up front.
    gw.port = port
    gw.args[gw.args.index("--port") + 1] = str(port)
    tmp = tempfile.TemporaryDirectory(prefix="wsgate-prom-")
    with gw:
        prom_port = free_port()
        target = f"127.0.0.1:{gw.admin_port}"
        cfg = os.path.join(tmp.name, "prometheus.yml")
        with open(cfg, "w") as f:
            yaml.safe_dump({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                            "rule_files": [RULES],
                            "scrape_configs": [{"job_name": "wsgate",
                                                "static_configs": [{"targets": [target]}]}]}, f)
        log = open(os.path.join(tmp.name, "prometheus.log"), "wb")
        prom = subprocess.Popen(
            [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={tmp.name}/data",
             f"--web.listen-address=127.0.0.1:{prom_port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        try:
            def scraped():
                r = prom_query(prom_port, 'up{job="wsgate"} == 1')
                return r.get("status") == "success" and r["data"]["result"]
            wait_for(lambda: prom.poll() is None and scraped(), 60, what="Prometheus scraping")
            asyncio.run(drive(gw, prom_port))
            yield gw, prom_port, target
        finally:
            prom.terminate()
            prom.wait(30)
            log.close()
            tmp.cleanup()


def test_every_panel_query_returns_series(stack):
    gw, prom_port, target = stack
    dash, queries = panel_queries()
    assert len(queries) >= 18  # panels with two queries count twice
    # Every row the dashboard promises is there.
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    assert rows == ["Traffic", "Latency", "Limits", "Errors", "Fan-out and bus", "Control plane"]
    missing = {}
    for title, expr in queries:
        q = substitute(expr, target)

        def has_series():
            r = prom_query(prom_port, q)
            assert r["status"] == "success", (title, q, r)
            return r["data"]["result"]
        try:
            wait_for(has_series, 20, interval=0.5, what=title)
        except AssertionError:
            missing[title] = q
    assert not missing, missing


def test_dashboard_variables_resolve(stack):
    gw, prom_port, target = stack
    dash = json.load(open(DASHBOARD))
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "job", "instance", "route"]
    for v in dash["templating"]["list"][1:]:
        # label_values(METRIC{...}, LABEL): the series selector must find the label.
        inner = v["query"]["query"][len("label_values("):-1]
        selector, _, label = inner.rpartition(",")
        r = prom_query(prom_port, f"count by ({label.strip()}) ({substitute(selector, target)})")
        assert r["status"] == "success" and r["data"]["result"], (v["name"], r)
    assert {"route": "limited"} in [
        {"route": s["metric"]["route"]} for s in
        prom_query(prom_port, 'wsgate_limit_hits_total{limit="max_connections"}')["data"]["result"]]


def test_every_alert_expression_evaluates(stack):
    gw, prom_port, _ = stack
    rules = yaml.safe_load(open(RULES))
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert len(alerts) == 9
    for a in alerts:
        r = prom_query(prom_port, a["expr"])
        assert r["status"] == "success", (a["alert"], r)
    # Prometheus loaded the same file without complaint.
    with urllib.request.urlopen(f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5) as r:
        loaded = json.load(r)
    names = [x["name"] for g in loaded["data"]["groups"] for x in g["rules"]]
    assert sorted(names) == sorted(a["alert"] for a in alerts)
    health = {x["name"]: x["health"] for g in loaded["data"]["groups"] for x in g["rules"]}
    wait_for(lambda: all(h == "ok" for h in (
        {x["name"]: x["health"] for g in json.load(urllib.request.urlopen(
            f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=5))["data"]["groups"]
         for x in g["rules"]}).values()), 20, what=f"every rule evaluated ok ({health})")


def test_promtool_check_metrics_finds_nothing(stack):
    gw, _, _ = stack
    status, _, body = http_request(gw.admin_port, "/metrics")
    assert status == 200
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True,
                       timeout=30)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), \
        (p.returncode, p.stdout.decode(), p.stderr.decode())
