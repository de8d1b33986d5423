#!/usr/bin/env bash
# The relay's cost of a wss:// upstream: 1 KiB messages through a websocket route to a ws://
# upstream and to a wss:// one, alternating, 3 rounds. Both upstreams are the same nginx (one
# worker, HTTP proxy) in front of bench/wsecho, listening plain and with TLS: the only difference
# between the two routes is TLS between wsgate and nginx. wsgate on core 0, the rest on core 1.
# Certificates are made here with the openssl CLI. Usage: bench/wss_upstream.sh [BUILD_DIR]
set -euo pipefail
B=$(cd "${1:-build}" && pwd)
W=$(mktemp -d /tmp/wsgate-wss-bench-XXXXXX)
cd "$W"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
E=$(port); P=$(port); T=$(port); G=$(port); A=$(port); R=$(port)
EC="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
openssl req -x509 $EC -keyout ca.key -out ca.pem -days 2 -subj /CN=bench-ca 2>/dev/null
openssl req $EC -keyout up.key -out up.csr -subj /CN=localhost 2>/dev/null
echo "subjectAltName=DNS:localhost" > up.ext
openssl x509 -req -in up.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out up.pem -days 2 \
  -extfile up.ext 2>/dev/null
cat > nginx.conf <<NG
worker_processes 1; daemon off; pid $W/nginx.pid; error_log $W/nginx.err;
events { worker_connections 4096; }
http { access_log off;
  map \$http_upgrade \$c { default upgrade; }
  server { listen 127.0.0.1:$P; listen 127.0.0.1:$T ssl;
    ssl_certificate $W/up.pem; ssl_certificate_key $W/up.key;
    location / { proxy_pass http://127.0.0.1:$E; proxy_http_version 1.1;
      proxy_set_header Upgrade \$http_upgrade; proxy_set_header Connection \$c;
      proxy_read_timeout 600s; proxy_buffering off; } } }
NG
cat > wsgate.yaml <<YG
routes:
  - {name: ws, path: /ws, websocket: {upstreams: ["ws://127.0.0.1:$P/"]}}
  - name: wss
    path: /wss
    websocket:
      upstreams: ["wss://localhost:$T/"]
      tls: {verify: VERIFY_CA_FILE, ca_file: $W/ca.pem}
YG
taskset -c 1 "$B/bench/wsecho" --port "$E" > /dev/null & EP=$!
taskset -c 1 nginx -c "$W/nginx.conf" -p "$W" & NP=$!
taskset -c 0 "$B/controlplane/main/wsgate" --config wsgate.yaml --port "$G" --admin-port "$A" \
  --grpc-port "$R" --listen 127.0.0.1 --grpc-listen 127.0.0.1 --workers 1 --log-level warn \
  > wsgate.log 2>&1 & GP=$!
trap 'kill $GP $NP $EP 2>/dev/null; wait; rm -rf "$W"' EXIT
sleep 2
for round in 1 2 3; do
  for path in /ws /wss; do
    printf '%s %s ' "$round" "$path"
    taskset -c 1 "$B/bench/wsload" --mode throughput --port "$G" --path "$path" --conns 100 \
      --inflight 1 --size 1024 --duration 5 --watch-pids "$GP" 2>&1 | tail -1 |
      python3 -c 'import json,sys; d=json.loads(sys.stdin.read())
print("msgs/s %.0f  proxy CPU/msg %.1f us  p99 %.0f us" % (d["msgs_per_s"], d["proxy_cpu_us_per_unit"], d["p99_us"]))'
  done
done
