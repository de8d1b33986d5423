"""Test harness for end-to-end tests of the real `wsgate` binary.

Everything here is real: the wsgate process, loopback sockets on free ports, an upstream
WebSocket server (python3-websockets, an implementation independent of websocketpp) and gRPC
stubs compiled from the project's protos by protoc + grpc_python_plugin at test time.
"""

import asyncio
import contextlib
import http.client
import importlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import websockets

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WSGATE_BIN = os.environ.get("WSGATE_BIN", os.path.join(REPO, "build", "controlplane", "main", "wsgate"))


def free_port():
    """A port that was free a moment ago on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=10.0, interval=0.02, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def http_request(port, path, method="GET", headers=None, body=None, timeout=5.0):
    """Returns (status, headers dict with lowercase names, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


class Gateway:
    """One wsgate process on free ports."""

    def __init__(self, config_yaml=None, state_dir=None, args=(), env=None, workers=2,
                 preexec_fn=None):
        self.port = free_port()
        self.admin_port = free_port()
        self.grpc_port = free_port()
        self.tmp = tempfile.TemporaryDirectory(prefix="wsgate-e2e-")
        self.state_dir = state_dir
        self.config_path = None
        if config_yaml is not None:
            self.config_path = os.path.join(self.tmp.name, "wsgate.yaml")
            with open(self.config_path, "w") as f:
                f.write(config_yaml)
        self.args = [WSGATE_BIN, "--port", str(self.port), "--admin-port", str(self.admin_port),
                     "--grpc-port", str(self.grpc_port), "--listen", "127.0.0.1",
                     "--grpc-listen", "127.0.0.1", "--workers", str(workers),
                     "--shutdown-grace", "1"]
        if self.config_path:
            self.args += ["--config", self.config_path]
        if state_dir:
            self.args += ["--state-dir", state_dir]
        self.args += list(args)
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.proc = None
        self.preexec_fn = preexec_fn  # e.g. to lower RLIMIT_NOFILE in the child only
        self.log_path = os.path.join(self.tmp.name, "wsgate.log")

    def start(self, wait=True):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT,
                                     env=self.env, stdin=subprocess.DEVNULL,
                                     preexec_fn=self.preexec_fn)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=15.0):
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"wsgate exited with {self.proc.returncode}:\n{self.output()}")
            try:
                return http_request(self.admin_port, "/ready", timeout=1)[0] == 200
            except OSError:
                return False
        wait_for(ready, timeout, what="wsgate /ready")

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def url(self, path):
        return f"ws://127.0.0.1:{self.port}{path}"

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_exit(self, timeout=20.0):
        return self.proc.wait(timeout=timeout)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        self.tmp.cleanup()

    # gRPC
    def channel(self):
        import grpc
        return grpc.insecure_channel(f"127.0.0.1:{self.grpc_port}")


def run_wsgate(args, timeout=20):
    """Runs wsgate to completion (e.g. --check-config); returns (exit code, output)."""
    p = subprocess.run([WSGATE_BIN] + list(args), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace")


_stubs = None


def stubs():
    """Compiles proto/wsgate/v1/*.proto once; returns a namespace of modules."""
    global _stubs
    if _stubs is not None:
        return _stubs
    out = tempfile.mkdtemp(prefix="wsgate-stubs-")
    proto_root = os.path.join(REPO, "proto")
    files = [os.path.join("wsgate", "v1", f) for f in
             ("config.proto", "route_service.proto", "inventory_service.proto",
              "session_service.proto", "limit_service.proto")]
    # Debian's grpc_tools bundles a protoc that refuses proto3 `optional`; the system protoc with
    # gRPC's Python plugin (both from protobuf-compiler-grpc) does not.
    subprocess.run(["/usr/bin/protoc", f"-I{proto_root}", f"--python_out={out}",
                    f"--grpc_python_out={out}",
                    "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin"]
                   + [os.path.join(proto_root, f) for f in files], check=True)
    sys.path.insert(0, out)

    class S:
        pass
    s = S()
    s.config = importlib.import_module("wsgate.v1.config_pb2")
    s.route = importlib.import_module("wsgate.v1.route_service_pb2")
    s.route_grpc = importlib.import_module("wsgate.v1.route_service_pb2_grpc")
    s.inventory = importlib.import_module("wsgate.v1.inventory_service_pb2")
    s.inventory_grpc = importlib.import_module("wsgate.v1.inventory_service_pb2_grpc")
    s.session = importlib.import_module("wsgate.v1.session_service_pb2")
    s.session_grpc = importlib.import_module("wsgate.v1.session_service_pb2_grpc")
    s.limit = importlib.import_module("wsgate.v1.limit_service_pb2")
    s.limit_grpc = importlib.import_module("wsgate.v1.limit_service_pb2_grpc")
    _stubs = s
    return s


class Upstream:
    """A real WebSocket upstream on a fixed port, run inside the test's asyncio loop.

    Echoes every message. Control messages (text) let a test steer it:
      "!close CODE REASON"  close with that code and reason
      "!drop"               drop the TCP connection without a close frame
      "!headers"            answer with the handshake's request headers as "name: value" lines
    Every connection's request path, headers and close code are recorded.
    """

    def __init__(self, port, subprotocols=None):
        self.port = port
        self.subprotocols = subprotocols
        self.connections = []   # websockets server protocols, in accept order
        self.closed = []        # (code, reason) seen by the upstream, in order
        self.received = []      # every message received
        self.server = None

    async def _handler(self, ws, path=None):
        self.connections.append(ws)
        try:
            async for msg in ws:
                if isinstance(msg, str) and msg.startswith("!close "):
                    _, code, reason = msg.split(" ", 2)
                    await ws.close(int(code), reason)
                    break
                if msg == "!drop":
                    ws.transport.abort()
                    break
                if msg == "!headers":
                    await ws.send("\n".join(f"{k.lower()}: {v}" for k, v in ws.request_headers.raw_items()))
                    continue
                self.received.append(msg)
                await ws.send(msg)
        except websockets.ConnectionClosed:
            pass
        finally:
            await ws.wait_closed()
            self.closed.append((ws.close_code, ws.close_reason))

    async def __aenter__(self):
        self.server = await websockets.serve(self._handler, "127.0.0.1", self.port, max_size=None,
                                             subprotocols=self.subprotocols, ping_interval=None,
                                             compression=None)
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def silent_upstream(port):
    """Accepts TCP connections and never answers: the upstream-timeout case."""
    writers = []

    async def on_conn(reader, writer):
        writers.append(writer)
        await reader.read(1 << 20)

    server = await asyncio.start_server(on_conn, "127.0.0.1", port)
    try:
        yield server
    finally:
        for w in writers:
            w.close()
        server.close()
        await server.wait_closed()


def connect(url, **kw):
    kw.setdefault("max_size", None)
    kw.setdefault("ping_interval", None)
    kw.setdefault("compression", None)
    kw.setdefault("open_timeout", 10)
    return websockets.connect(url, **kw)


async def handshake_status(url, **kw):
    """101 when the handshake succeeds, else the HTTP status the gateway refused it with.

    Any other failure (a client-side timeout, a reset) raises: it is not an answer."""
    try:
        async with connect(url, **kw):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


def parse_metrics(text):
    """Prometheus text format -> {(name, frozenset(labels.items())): value}."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name_labels, _, value = line.rpartition(" ")
        if "{" in name_labels:
            name, _, rest = name_labels.partition("{")
            labels = {}
            for part in rest.rstrip("}").split(","):
                if not part:
                    continue
                k, _, v = part.partition("=")
                labels[k] = v.strip('"')
        else:
            name, labels = name_labels, {}
        out[(name, frozenset(labels.items()))] = float(value)
    return out


def metric(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the test process dies (no stray servers)."""
    import ctypes
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class RedisServer:
    """A real redis-server (Debian package) on a free loopback port, no persistence.

    stop() and start() again keep the port, so a gateway can watch Redis go away and return."""

    def __init__(self):
        self.port = free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}"

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--protected-mode", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
            preexec_fn=_die_with_parent)
        wait_for(lambda: self.ping(), 10, what="redis-server PING")
        return self

    def ping(self):
        try:
            return self.cli("PING", timeout=1).strip() == "PONG"
        except (subprocess.SubprocessError, OSError):
            return False

    def cli(self, *args, timeout=5):
        """Runs redis-cli against this server; returns its stdout."""
        out = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
                             capture_output=True, timeout=timeout, check=True)
        return out.stdout.decode()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class RespSubscriber:
    """A raw-socket RESP client subscribed to channels: an independent reader of what wsgate
    publishes to Redis."""

    def __init__(self, port, *channels):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        cmd = [b"SUBSCRIBE", *[c.encode() for c in channels]]
        self.sock.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in cmd))
        for _ in channels:
            kind, _, _ = self.read_push()
            assert kind == b"subscribe"

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def _bulk(self, n):
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _value(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"$":
            return self._bulk(int(rest))
        if t == b":":
            return int(rest)
        if t == b"*":
            return [self._value() for _ in range(int(rest))]
        return rest

    def read_push(self, timeout=5.0):
        """(kind, channel, payload-or-count) of the next push message."""
        self.sock.settimeout(timeout)
        v = self._value()
        return v[0], v[1], v[2]

    def read_message(self, timeout=5.0):
        """(channel, payload) of the next published message."""
        kind, channel, payload = self.read_push(timeout)
        assert kind == b"message", kind
        return channel.decode(), payload

    def close(self):
        self.sock.close()


def raw_handshake(port, path, source="127.0.0.1", rcvbuf=None):
    """A WebSocket handshake from `source` on a raw socket. Returns (status, headers, socket);
    the socket stays open (the caller closes it) so that an admitted connection keeps its place."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.sendall((f"GET {path} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
              .encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(1)
        assert chunk, head
        head += chunk
    lines = head.decode().split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
    return status, headers, s


def recv_exact(sock, n):
    """Exactly n bytes from a blocking socket; ConnectionError when it closes first."""
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed mid-frame")
        buf += chunk
    return buf


def read_frame(sock):
    """(opcode, payload) of the next server frame (servers never mask); ConnectionError when the
    connection closes first."""
    def exact(n):
        return recv_exact(sock, n)
    b0, b1 = exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = int.from_bytes(exact(2), "big")
    elif n == 127:
        n = int.from_bytes(exact(8), "big")
    return b0 & 0x0F, exact(n)
