#!/bin/bash
# usage: run1.sh <wsgate-binary> <bin dir for tools> <wrapper...>
# starts wsecho + wsgate (1 worker, pinned core 0 unless NOPIN), prints echo port and wsgate port to ports.txt
WSGATE=$1; TOOLS=$2; shift 2
$TOOLS/wsecho --port 0 --lifetime-s 600 > echo.out 2>echo.err &
echo $! > echo.pid
sleep 0.3
EPORT=$(head -1 echo.out | grep -o '[0-9]\+' | head -1)
cat > gw.yaml <<Y
server:
  listen_address: 127.0.0.1
routes:
  - name: bench
    path: /bench
    websocket:
      upstreams: ["ws://127.0.0.1:$EPORT/bench"]
      connect_timeout_ms: 5000
    limits:
      max_message_bytes: 1048576
Y
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
ADMIN=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
GRPC=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$@" $WSGATE --config gw.yaml --port $PORT --admin-port $ADMIN --grpc-port $GRPC --workers 1 --log-level warn --shutdown-grace 1 > gw.out 2>gw.err &
echo $! > gw.pid
echo $PORT > port.txt
echo "echo=$EPORT gw=$PORT pid=$(cat gw.pid)"
