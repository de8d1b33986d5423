"""/metrics carries no unbounded label: sessions on every route kind with distinctive path
parameters, query strings, client ids and (wsgate's own) session ids, then a scrape in which
(a) none of those values appears anywhere, (b) every label name is one of a known few, `route`
only takes configured route names, and (c) a second round of sessions with all-new ids adds no
series at all (the label values do not follow the traffic)."""

import asyncio
import http.server
import json
import re
import threading

from wsgate_harness import Gateway, Upstream, connect, free_port, handshake_status, http_request, stubs

S = stubs()

# Label names the gateway's own series may carry (and Prometheus' le/quantile); a new one must
# be added here on purpose, after checking that its values are bounded.
ALLOWED_LABELS = {"route", "kind", "code", "reason", "direction", "outcome", "method", "limit",
                  "bus", "version", "le", "quantile", "state", "type", "status", "event", "leg",
                  "result", "target", "policy", "cause"}
ROUTES = ["echo", "proxy", "room", "pubsub", "bridge", "ext"]


class Backend(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def config(upstream_port):
    return f"""
routes:
  - name: echo
    path: /echo/{{client_id}}
    echo: {{}}
  - name: proxy
    path: /proxy/{{client_id}}
    websocket:
      upstreams: ["ws://127.0.0.1:{upstream_port}/up"]
  - name: room
    path: /room/{{room}}/{{client_id}}
    room: {{room_param: room}}
  - name: pubsub
    path: /ps/{{session_id}}
    pubsub: {{}}
  - name: bridge
    path: /bridge/{{client_id}}
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
  - name: ext
    path: /ext/{{client_id}}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*"]
      allowed_address_ranges: [loopback]
"""


def scrape(g):
    status, _, body = http_request(g.admin_port, "/metrics")
    assert status == 200
    return body.decode()


def series(text):
    """{(name, frozenset(labels))} of every sample line, with the labels parsed properly
    (values may hold commas or escaped quotes)."""
    out = set()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ', line)
        assert m, line
        labels = re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(3) or "")
        out.add((m.group(1), frozenset(labels)))
    return out


async def open_everything(g, tag, upstream_port, backend_port):
    """Opens a session on each route (ids and query values containing `tag`), does one message
    on each, lists wsgate's session ids while they are open, and closes them. Returns every
    distinctive value used."""
    values = set()

    def v(kind):
        x = f"{kind}-{tag}"
        values.add(x)
        return x

    q = f"?{v('qname')}={v('qvalue')}&ref={v('ref')}"
    async with Upstream(upstream_port):
        socks = [
            await connect(g.url(f"/echo/{v('echoclient')}{q}")).__aenter__(),
            await connect(g.url(f"/proxy/{v('proxyclient')}{q}")).__aenter__(),
            await connect(g.url(f"/room/{v('roomname')}/{v('roomclient')}{q}")).__aenter__(),
            await connect(g.url(f"/ps/{v('pubsubsession')}{q}")).__aenter__(),
            await connect(g.url(f"/bridge/{v('bridgeclient')}{q}")).__aenter__(),
            await connect(g.url(f"/ext/{v('extclient')}{q}")).__aenter__(),
        ]
        try:
            echo, proxy, room, pubsub, bridge, ext = socks
            for ws in (echo, proxy):
                await ws.send(v("msg"))
                assert await asyncio.wait_for(ws.recv(), 15) == v("msg")
            await room.send(v("roommsg"))
            await pubsub.send(v("pubsubmsg"))
            await bridge.send(json.dumps({"url": f"http://127.0.0.1:{backend_port}/{v('bpath')}"
                                                 f"?{v('bq')}=1", "method": "GET",
                                          "id": v("bridgeid")}))
            assert json.loads(await asyncio.wait_for(bridge.recv(), 15))["status_code"] == 200
            await ext.send(json.dumps({"type": "connect_external",
                                       "url": f"ws://127.0.0.1:{upstream_port}/{v('extpath')}"}))
            while json.loads(await asyncio.wait_for(ext.recv(), 15)).get("status") != "connected":
                pass
            # A refusal with a distinctive path: no route matches.
            assert await handshake_status(g.url(f"/nowhere/{v('nomatch')}{q}")) == 404
            ch = g.channel()
            listed = S.session_grpc.SessionServiceStub(ch).ListSessions(
                S.session.ListSessionsRequest(), timeout=10).sessions
            ch.close()
            assert len(listed) >= 6, listed
            values.update(s.id for s in listed)
        finally:
            for ws in socks:
                await ws.close()
    return values


def test_metrics_have_no_unbounded_labels():
    upstream_port = free_port()
    backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    try:
        with Gateway(config(upstream_port), env={"WEBSOCKET_DEBUG": "true"}) as g:
            first = asyncio.run(asyncio.wait_for(
                open_everything(g, "zq1x", upstream_port, backend.server_address[1]), 120))
            text1 = scrape(g)
            second = asyncio.run(asyncio.wait_for(
                open_everything(g, "zq2y", upstream_port, backend.server_address[1]), 120))
            text2 = scrape(g)
    finally:
        backend.shutdown()

    for values, text in ((first, text1), (second | first, text2)):
        found = sorted(x for x in values if x in text)
        assert not found, f"ids or request values in /metrics: {found}"
    s1, s2 = series(text1), series(text2)
    names = {k for _, labels in s2 for k, _ in labels}
    assert names <= ALLOWED_LABELS, f"unexpected label names: {sorted(names - ALLOWED_LABELS)}"
    routes = {val for _, labels in s2 for k, val in labels if k == "route"}
    assert routes <= set(ROUTES) | {""}, f"route values that are not routes: {sorted(routes)}"
    # Per label name, the values seen are few: bounded by the routes and the codes, not traffic.
    for label in names - {"le", "quantile"}:
        vals = {val for _, labels in s2 for k, val in labels if k == label}
        assert len(vals) <= 40, (label, sorted(vals))
    # The same traffic with new ids makes no new series.
    assert s2 == s1, f"series that appeared with new ids: {sorted(map(str, s2 - s1))[:20]}"
