"""The Autobahn TestSuite's fuzzing client (cases 1-7 and 10) against wsgate, with nginx as the
reference peer in the same run.

Targets (one wstest run, the servers one after the other):
  wsgate-echo                  wsgate's `echo` kind at /echo (websocketpp ends the connection)
  wsgate-relay-to-websockets   a `websocket`-kind route (the relay) to an upstream that is not
                               wsgate: echo_upstream.py, python3-websockets
  nginx-to-websockets          Debian's nginx as a WebSocket reverse proxy, same upstream
  wsgate-relay-to-wsgate-echo  the relay to wsgate's own /echo (websocketpp, a strict endpoint)
  nginx-to-wsgate-echo         nginx in front of that same /echo
A proxy can be no stricter than the endpoint behind it: python3-websockets fails a connection
as soon as it parses a bad frame, before its handler has echoed the good frames that came in the
same read, so a few cases are NON-STRICT through any proxy to it (nginx's column shows which).
The pairs with websocketpp's /echo behind them show the proxies' own behaviour.

Everything is a real process on free loopback ports. The run reads Autobahn's own JSON report
(index.json) and prints, per target, how many cases got each behaviour (and each close
behaviour). It exits 1 listing every wsgate case whose behaviour or close behaviour is neither
OK nor INFORMATIONAL, unless nginx in front of the same upstream got the very same behaviour in
the same run (the upstream's own, then; listed as such). nginx is the reference, only reported. A missing wstest or nginx is a
failure, never a skip.

By hand: `bash .ci/install-autobahn.sh` (once), then
  /usr/bin/python3 tests/integration/conformance/run_autobahn.py --report-dir /tmp/ab
and open /tmp/ab/index.html for Autobahn's per-case report."""

import argparse
import collections
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from wsgate_harness import REPO, Gateway, free_port, wait_for  # noqa: E402

CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "10.*"]
ACCEPTED = ("OK", "INFORMATIONAL")
TARGETS = ["wsgate-echo", "wsgate-relay-to-websockets", "nginx-to-websockets",
           "wsgate-relay-to-wsgate-echo", "nginx-to-wsgate-echo"]
# Each relay target and the nginx target in front of the same upstream.
REFERENCE = {"wsgate-relay-to-websockets": "nginx-to-websockets",
             "wsgate-relay-to-wsgate-echo": "nginx-to-wsgate-echo"}


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_upstream(port):
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "echo_upstream.py"),
                             str(port)], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    if not line.startswith("listening"):
        proc.kill()
        raise SystemExit(f"conformance: the echo upstream did not start ({line!r})")
    return proc


def start_nginx(nginx, work, port, upstream_port, gateway_port):
    prefix = os.path.join(work, "nginx")
    os.makedirs(prefix)
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /up {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
        location /echo {{
            proxy_pass http://127.0.0.1:{gateway_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
            proxy_set_header Host $host;
            proxy_buffering off;
        }}
    }}
}}
""")
    proc = subprocess.Popen([nginx, "-p", prefix, "-e", f"{prefix}/error.log", "-c", conf],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.STDOUT)
    wait_for(lambda: proc.poll() is not None or port_accepts(port), 15, what="nginx to listen")
    if proc.poll() is not None:
        with open(f"{prefix}/error.log") as f:
            raise SystemExit(f"conformance: nginx exited:\n{f.read()}")
    return proc


def stop(proc):
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def summarize(index):
    """{agent: (Counter of behavior, Counter of behaviorClose, [bad cases])}"""
    out = {}
    for agent, cases in index.items():
        behavior = collections.Counter()
        close = collections.Counter()
        bad = []
        for case_id, r in cases.items():
            behavior[r["behavior"]] += 1
            close[r["behaviorClose"]] += 1
            if r["behavior"] not in ACCEPTED or r["behaviorClose"] not in ACCEPTED:
                bad.append((case_id, r["behavior"], r["behaviorClose"], r.get("remoteCloseCode")))
        bad.sort(key=lambda b: [int(x) for x in b[0].split(".")])
        out[agent] = (behavior, close, bad)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--wstest", default=os.path.join(REPO, ".tools", "autobahn", "wstest"))
    ap.add_argument("--nginx", default="/usr/sbin/nginx")
    ap.add_argument("--report-dir", help="keep Autobahn's report here (default: a temp dir)")
    ap.add_argument("--cases", nargs="*", default=CASES)
    ap.add_argument("--targets", nargs="*", default=TARGETS, choices=TARGETS)
    args = ap.parse_args()
    for tool, hint in ((args.wstest, "run `bash .ci/install-autobahn.sh` (make autobahn-tools)"),
                       (args.nginx, "install nginx-light (make deps)")):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"conformance: {tool} is missing: {hint}")

    work = tempfile.mkdtemp(prefix="wsgate-conformance-")
    report_dir = args.report_dir or os.path.join(work, "report")
    up_port, nginx_port = free_port(), free_port()
    gateway = Gateway(f"""
routes:
  - name: echo
    path: /echo
    echo: {{}}
  - name: relay
    path: /relay
    websocket:
      upstreams: ["ws://127.0.0.1:{up_port}/"]
  - name: relay-echo
    path: /relay-echo
    websocket:
      upstreams: ["ws://127.0.0.1:@PORT@/echo"]
""", workers=1)
    # The relay's second upstream is this gateway's own /echo: its port is known only now.
    with open(gateway.config_path) as f:
        text = f.read().replace("@PORT@", str(gateway.port))
    with open(gateway.config_path, "w") as f:
        f.write(text)
    upstream = nginx = None
    started = time.monotonic()
    try:
        upstream = start_upstream(up_port)
        gateway.start()
        nginx = start_nginx(args.nginx, work, nginx_port, up_port, gateway.port)
        urls = {"wsgate-echo": gateway.url("/echo"),
                "wsgate-relay-to-websockets": gateway.url("/relay"),
                "nginx-to-websockets": f"ws://127.0.0.1:{nginx_port}/up",
                "wsgate-relay-to-wsgate-echo": gateway.url("/relay-echo"),
                "nginx-to-wsgate-echo": f"ws://127.0.0.1:{nginx_port}/echo"}
        servers = [{"agent": t, "url": urls[t]} for t in TARGETS if t in args.targets]
        spec = os.path.join(work, "fuzzingclient.json")
        with open(spec, "w") as f:
            json.dump({"outdir": report_dir, "servers": servers, "cases": args.cases,
                       "exclude-cases": [], "exclude-agent-cases": {}}, f, indent=1)
        run = subprocess.run([args.wstest, "-m", "fuzzingclient", "-s", spec], cwd=work,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, timeout=900)
        if run.returncode != 0:
            print(run.stdout.decode(errors="replace")[-4000:])
            raise SystemExit(f"conformance: wstest exited with {run.returncode}")
        if gateway.proc.poll() is not None:
            raise SystemExit(f"conformance: wsgate died during the run:\n{gateway.output()[-4000:]}")
    finally:
        stop(nginx)
        gateway.stop()
        stop(upstream)
    elapsed = time.monotonic() - started
    # Under WSGATE_SANITIZE a report (LeakSanitizer's at exit, say) shows in the log; a clean stop
    # exits 0.
    out = gateway.output()
    if "Sanitizer" in out or gateway.proc.returncode != 0:
        raise SystemExit(f"conformance: wsgate exited with {gateway.proc.returncode}:\n{out[-20000:]}")

    with open(os.path.join(report_dir, "index.json")) as f:
        index = json.load(f)
    failures = []
    print(f"conformance: Autobahn cases {' '.join(args.cases)}, {elapsed:.0f} s; report in {report_dir}")
    summary = summarize(index)
    for agent in [t for t in TARGETS if t in summary]:
        behavior, close, bad = summary[agent]
        total = sum(behavior.values())
        counts = ", ".join(f"{n} {b}" for b, n in sorted(behavior.items()))
        closes = ", ".join(f"{n} {b}" for b, n in sorted(close.items()))
        print(f"  {agent}: {total} cases: {counts} (close: {closes})")
        ref = index.get(REFERENCE.get(agent), {})
        for case_id, b, c, code in bad:
            theirs = ref.get(case_id)
            as_ref = theirs is not None and (theirs["behavior"], theirs["behaviorClose"]) == (b, c)
            note = f" (as {REFERENCE[agent]}: the upstream's behaviour)" if as_ref else ""
            print(f"    {case_id}: behavior {b}, behaviorClose {c}, remote close code {code}{note}")
            if agent.startswith("wsgate") and not as_ref:
                failures.append(f"{agent} {case_id}")
    if not args.report_dir:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"conformance: FAILED: {len(failures)} case(s) neither OK nor INFORMATIONAL: "
              + ", ".join(failures))
        return 1
    print("conformance: every wsgate case OK or INFORMATIONAL, or as nginx in front of the same upstream")
    return 0


if __name__ == "__main__":
    sys.exit(main())
