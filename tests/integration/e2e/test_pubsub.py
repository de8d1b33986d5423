"""Kind `pubsub` (seed 004) end to end against a real redis-server started by the test:
`redis-cli PUBLISH session:S:down` reaches the client in order, client messages appear on
`session:S:up`, the subscription exists before the handshake completes, Redis down -> 503 and
/ready 503 (/health stays 200), and sessions survive a Redis restart or a hung (SIGSTOP) Redis.
Also the in-memory bus (no REDIS_URL), every outcome of both auth modes (redis_token, jwt_hs256) with the token in
the header, a query parameter or a subprotocol, JSON/binary checks, ping and backpressure."""

import asyncio
import base64
import hashlib
import hmac
import json
import signal as signal_module
import socket
import subprocess
import time

import pytest

from wsgate_harness import (Gateway, RedisServer, RespSubscriber, connect, handshake_status,
                            http_request, metric, parse_metrics, raw_handshake, read_frame,
                            wait_for)

PUBSUB_CONFIG = """
routes:
  - name: sessions
    path: /{agent_id}/ws/{session_id}
    pubsub: {}
  - name: quiet
    path: /quiet/{session_id}
    pubsub:
      disable_up: true
  - name: secured
    path: /secure/{agent_id}/ws/{session_id}
    pubsub:
      auth: AUTH_REDIS_TOKEN
  - name: impatient
    path: /impatient/{session_id}
    pubsub:
      subscribe_timeout_ms: 300
"""


def metrics(gw):
    return parse_metrics(http_request(gw.admin_port, "/metrics")[2].decode())


async def recv(ws, timeout=5):
    return await asyncio.wait_for(ws.recv(), timeout)


def numsub(redis, channel):
    out = redis.cli("PUBSUB", "NUMSUB", channel).split()
    return int(out[1])


@pytest.fixture
def redis():
    with RedisServer() as r:
        yield r


@pytest.fixture
def gw(redis):
    with Gateway(PUBSUB_CONFIG, env={"REDIS_URL": redis.url}, workers=2) as g:
        yield g


def test_redis_publish_reaches_client_in_order_and_client_messages_go_up(redis, gw):
    up = RespSubscriber(redis.port, "session:S1:up")
    try:
        async def main():
            async with connect(gw.url("/agent1/ws/S1")) as ws:
                # Subscribe-before-handshake: the channel is subscribed by the time the client
                # sees 101, so a message published right now is not lost.
                assert numsub(redis, "session:S1:down") == 1
                redis.cli("PUBLISH", "session:S1:down",
                          '{"type": "data", "payload": "Hello from Redis!"}')
                assert await recv(ws) == '{"type": "data", "payload": "Hello from Redis!"}'
                for i in range(5):
                    redis.cli("PUBLISH", "session:S1:down", f"m{i}")
                for i in range(5):
                    assert await recv(ws) == f"m{i}"
                await ws.send("from the client")
                await ws.send(b"\xff\x00binary")
                assert up.read_message() == ("session:S1:up", b"from the client")
                assert up.read_message() == ("session:S1:up", b"\xff\x00binary")
            # The last connection of the session gone: the process unsubscribed upstream.
            wait_for(lambda: numsub(redis, "session:S1:down") == 0, 5, what="UNSUBSCRIBE")
        asyncio.run(main())
    finally:
        up.close()


def test_many_messages_arrive_in_publish_order(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/order")) as ws:
            # One redis-cli process publishing 300 messages back to back.
            script = "".join(f"PUBLISH session:order:down n{i}\n" for i in range(300))
            subprocess.run(["redis-cli", "-p", str(redis.port)], input=script.encode(),
                           capture_output=True, check=True, timeout=10)
            got = [await recv(ws) for _ in range(300)]
            assert got == [f"n{i}" for i in range(300)]
    asyncio.run(main())


def test_two_sessions_are_separate_and_reconnect_subscribes_again(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/A")) as a, connect(gw.url("/b/ws/B")) as b:
            redis.cli("PUBLISH", "session:B:down", "for B")
            redis.cli("PUBLISH", "session:A:down", "for A")
            assert await recv(a) == "for A"
            assert await recv(b) == "for B"
        async with connect(gw.url("/a/ws/A")) as again:
            redis.cli("PUBLISH", "session:A:down", "after reconnect")
            assert await recv(again) == "after reconnect"
    asyncio.run(main())


def test_disable_up_drops_client_messages(redis, gw):
    up = RespSubscriber(redis.port, "session:Q:up")
    try:
        async def main():
            async with connect(gw.url("/quiet/Q")) as ws:
                await ws.send("not published")
                redis.cli("PUBLISH", "session:Q:down", "down still works")
                assert await recv(ws) == "down still works"
        asyncio.run(main())
        with pytest.raises(OSError):  # socket.timeout: nothing was published
            up.read_message(timeout=0.3)
    finally:
        up.close()


def test_redis_down_gives_503_and_ready_503_then_sessions_recover(redis, gw):
    async def main():
        async with connect(gw.url("/a/ws/survivor")) as ws:
            redis.stop()
            wait_for(lambda: http_request(gw.port, "/ready")[0] == 503, 10,
                     what="/ready 503 while Redis is down")
            status, _, body = http_request(gw.port, "/ready")
            assert json.loads(body) == {"status": "not_ready", "redis": "down"}
            # Unready, not dead: a liveness probe must not restart the pod for a Redis outage.
            assert http_request(gw.port, "/health")[0] == 200
            assert http_request(gw.admin_port, "/health")[0] == 200
            status, _, body = http_request(gw.admin_port, "/ready")
            assert (status, json.loads(body)) == (503, {"status": "not_ready", "redis": "down"})
            assert await handshake_status(gw.url("/a/ws/new-during-outage")) == 503
            assert metric(metrics(gw), "wsgate_bus_up") == 0
            redis.start()  # same port
            wait_for(lambda: http_request(gw.port, "/ready")[0] == 200, 15,
                     what="/ready 200 after Redis is back")
            assert http_request(gw.admin_port, "/ready")[0] == 200
            # The open session was kept and resubscribed.
            wait_for(lambda: numsub(redis, "session:survivor:down") == 1, 10,
                     what="resubscription")
            redis.cli("PUBLISH", "session:survivor:down", "after the outage")
            assert await recv(ws) == "after the outage"
            m = metrics(gw)
            assert metric(m, "wsgate_bus_up") == 1
            assert metric(m, "wsgate_bus_reconnects_total") >= 1
            assert metric(m, "wsgate_bus_channels_active") == 1
            assert metric(m, "wsgate_bus_received_total", bus="redis") >= 1
            assert await handshake_status(gw.url("/a/ws/new-after-outage")) == 101
    asyncio.run(main())


def _answers(port, path):
    try:
        return http_request(port, path, timeout=1)[0] == 200
    except OSError:
        return False


def test_redis_unreachable_at_start_gives_503():
    dead = RedisServer()  # never started: nothing listens on its port
    # Never ready (the harness waits for /ready 200): wait for the process to be alive instead.
    g = Gateway(PUBSUB_CONFIG, env={"REDIS_URL": dead.url}, workers=1)
    try:
        g.start(wait=False)
        wait_for(lambda: _answers(g.admin_port, "/health"), 15, what="admin /health")
        assert http_request(g.admin_port, "/ready")[0] == 503
        assert http_request(g.port, "/ready")[0] == 503
        assert http_request(g.port, "/health")[0] == 200
        assert asyncio.run(handshake_status(g.url("/a/ws/S"))) == 503
    finally:
        g.stop()
        g.tmp.cleanup()


def test_malformed_redis_url_fails_start():
    g = Gateway(PUBSUB_CONFIG, env={"REDIS_URL": "http://nope"}, workers=1)
    try:
        g.start(wait=False)
        assert g.wait_exit(20) != 0
        assert "REDIS_URL" in g.output()
    finally:
        g.stop()
        g.tmp.cleanup()


def test_in_memory_bus_when_no_redis_url():
    env = {"REDIS_URL": ""}
    with Gateway(PUBSUB_CONFIG + """
  - name: chat
    path: /ws/{client_id}
    room: {}
""", env=env, workers=2) as g:
        assert http_request(g.port, "/health")[0] == 200
        assert http_request(g.port, "/ready")[0] == 200
        assert http_request(g.admin_port, "/ready")[0] == 200

        async def main():
            # Without Redis a session still opens; what the client sends goes to the in-memory
            # up channel (no one listens), and nothing breaks.
            async with connect(g.url("/a/ws/mem")) as ws:
                await ws.send("nobody listens")
                await ws.ping()
        asyncio.run(main())


def test_redis_token_auth_every_outcome(redis, gw):
    url = gw.url("/secure/agent/ws/T1")

    async def status(headers=None):
        return await handshake_status(url, extra_headers=headers or {})

    async def main():
        redis.cli("SET", "session:T1:auth", "s3cret-token")
        assert await status() == 400                                        # no header
        assert await status({"Authorization": "Basic czNjcmV0"}) == 400     # not Bearer
        assert await status({"Authorization": "Bearer "}) == 400            # empty token
        assert await status({"Authorization": "Bearer a b"}) == 400         # malformed
        assert redis.cli("GET", "session:T1:auth").strip() == "s3cret-token"  # untouched so far
        assert await status({"Authorization": "Bearer wrong"}) == 403
        # The key is deleted on use, even by a mismatch (GETDEL): a guess costs the token.
        assert redis.cli("EXISTS", "session:T1:auth").strip() == "0"
        assert await status({"Authorization": "Bearer s3cret-token"}) == 401
        redis.cli("SET", "session:T1:auth", "s3cret-token")
        async with connect(url, extra_headers={"Authorization": "bearer s3cret-token"}) as ws:
            assert redis.cli("EXISTS", "session:T1:auth").strip() == "0"
            redis.cli("PUBLISH", "session:T1:down", "authorised")
            assert await recv(ws) == "authorised"
        # Used once: the same token does not open a second connection.
        assert await status({"Authorization": "Bearer s3cret-token"}) == 401
        redis.stop()
        wait_for(lambda: http_request(gw.port, "/ready")[0] == 503, 10, what="Redis down")
        assert await status({"Authorization": "Bearer s3cret-token"}) == 503
    asyncio.run(main())
    m = metrics(gw)
    for reason, n in (("malformed", 4), ("mismatch", 1), ("unknown_token", 2), ("unavailable", 1)):
        assert metric(m, "wsgate_auth_failures_total", route="secured", reason=reason) == n, reason


def test_redis_token_auth_on_the_in_memory_bus_is_503():
    with Gateway(PUBSUB_CONFIG, env={"REDIS_URL": ""}, workers=1) as g:
        assert asyncio.run(handshake_status(g.url("/secure/a/ws/S"),
                                            extra_headers={"Authorization": "Bearer x"})) == 503


def test_ping_timeout_closes_a_silent_client_and_keeps_a_responsive_one(redis):
    env = {"REDIS_URL": redis.url, "WS_PING_INTERVAL_SECS": "0.3", "WS_PING_TIMEOUT_SECS": "0.5"}
    with Gateway(PUBSUB_CONFIG, env=env, workers=1) as g:
        async def responsive():
            # python3-websockets answers pings by itself: the session outlives many intervals.
            async with connect(g.url("/a/ws/alive")) as ws:
                for i in range(8):
                    with pytest.raises(asyncio.TimeoutError):
                        await asyncio.wait_for(ws.recv(), 0.3)
                redis.cli("PUBLISH", "session:alive:down", "still open")
                assert await recv(ws) == "still open"

        status, _, silent = raw_handshake(g.port, "/a/ws/silent")
        try:
            assert status == 101
            asyncio.run(responsive())
            # The silent client never answered: it got pings, then a close with 1001.
            opcodes = []
            while True:
                opcode, payload = read_frame(silent)
                opcodes.append(opcode)
                if opcode == 0x8:
                    assert int.from_bytes(payload[:2], "big") == 1001
                    assert payload[2:] == b"ping timeout"
                    break
            assert opcodes[0] == 0x9, opcodes
        finally:
            silent.close()


def publish_many(port, channel, payloads):
    """Pipelines PUBLISH commands on one raw connection and waits for every reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        out = bytearray()
        for p in payloads:
            parts = [b"PUBLISH", channel.encode(), p]
            out += b"*3\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(x), x) for x in parts)
        s.sendall(bytes(out))
        replies = 0
        buf = b""
        while replies < len(payloads):
            chunk = s.recv(65536)
            assert chunk, "redis closed"
            buf += chunk
            replies = buf.count(b"\r\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_slow_reader_is_closed_with_1008_and_memory_stays_bounded(redis):
    config = PUBSUB_CONFIG + """
  - name: bounded
    path: /bounded/{session_id}
    pubsub:
      max_queued_bytes: 1048576
"""
    # Under AddressSanitizer (make test's second pass) freed buffers sit in ASan's quarantine
    # (256 MiB by default) and would count as growth; a small quarantine keeps the measurement
    # about wsgate's own queueing. Ignored by the release build.
    env = {"REDIS_URL": redis.url, "ASAN_OPTIONS": "quarantine_size_mb=1"}
    with Gateway(config, env=env, workers=1) as g:
        status, _, slow = raw_handshake(g.port, "/bounded/slow", rcvbuf=4096)
        try:
            assert status == 101
            before = rss_kib(g.proc.pid)
            # 64 MiB published as fast as Redis takes it, to a client that reads nothing.
            payload = b"x" * 65536
            publish_many(redis.port, "session:slow:down", [payload] * 1024)
            grown = rss_kib(g.proc.pid) - before
            assert grown < 32 * 1024, f"RSS grew by {grown} KiB"
            # Reading now: the queued data (bounded), then a close frame 1008.
            data_bytes = 0
            while True:
                opcode, body = read_frame(slow)
                if opcode == 0x8:
                    assert int.from_bytes(body[:2], "big") == 1008
                    assert body[2:] == b"client too slow"
                    break
                data_bytes += len(body)
            assert data_bytes < 64 * 1024 * 1024
            assert metric(metrics(g), "wsgate_backpressure_closes_total", route="bounded") == 1
        finally:
            slow.close()


def test_subscription_slower_than_the_timeout_gives_504(redis, gw):
    import signal as sig
    # A paused Redis accepts nothing and answers nothing, but does not look down: the SUBSCRIBE
    # is never acknowledged and the route's 300 ms deadline answers the handshake.
    redis.proc.send_signal(sig.SIGSTOP)
    try:
        assert asyncio.run(handshake_status(gw.url("/impatient/P"))) == 504
    finally:
        redis.proc.send_signal(sig.SIGCONT)
    assert asyncio.run(handshake_status(gw.url("/impatient/P2"))) == 101


# ---------------------------------------------------------------------------------------------
# Auth mode jwt_hs256, the token outside the Authorization header, message checks, per-route
# ping, hung Redis.

JWT_SECRET = "jwt-test-secret-0123456789abcdef"


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_jwt(claims, secret=JWT_SECRET, header=None):
    """A compact JWS built independently of wsgate (Python's hmac + hashlib)."""
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(claims).encode()))
    sig = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(sig)


def jwt_config(secret_file):
    return f"""
routes:
  - name: jwt-env
    path: /jwt/{{agent_id}}/ws/{{session_id}}
    pubsub:
      auth: AUTH_JWT_HS256
      jwt_secret_env: WSGATE_TEST_JWT_SECRET
  - name: jwt-browser
    path: /browser/{{session_id}}
    pubsub:
      auth: AUTH_JWT_HS256
      jwt_secret_file: {secret_file}
      token_query_param: access_token
      token_subprotocol: true
  - name: redis-browser
    path: /redis-browser/{{session_id}}
    pubsub:
      auth: AUTH_REDIS_TOKEN
      token_query_param: access_token
      token_subprotocol: true
"""


@pytest.fixture
def jwt_gw(redis, tmp_path):
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_text(JWT_SECRET + "\n")  # trailing newline removed by wsgate
    env = {"REDIS_URL": redis.url, "WSGATE_TEST_JWT_SECRET": JWT_SECRET}
    with Gateway(jwt_config(secret_file), env=env, workers=2) as g:
        yield g


def test_jwt_hs256_every_outcome(redis, jwt_gw):
    g = jwt_gw
    url = g.url("/jwt/agent/ws/J1")
    now = int(time.time())

    async def status(token=None, raw_header=None):
        headers = {}
        if raw_header is not None:
            headers["Authorization"] = raw_header
        elif token is not None:
            headers["Authorization"] = "Bearer " + token
        return await handshake_status(url, extra_headers=headers)

    async def main():
        good = make_jwt({"session_id": "J1", "exp": now + 300})
        async with connect(url, extra_headers={"Authorization": "Bearer " + good}) as ws:
            redis.cli("PUBLISH", "session:J1:down", "jwt ok")
            assert await recv(ws) == "jwt ok"
        # Not used up: a JWT may open the session again (reconnect) until it expires.
        assert await status(good) == 101
        assert await status(make_jwt({"session_id": "J1"})) == 101       # no exp: accepted
        assert await status() == 400                                        # missing
        assert await status(raw_header="Basic Zm9v") == 400                 # not Bearer
        assert await status("only.two") == 400                              # malformed
        assert await status("a.b.c") == 400                                 # not base64url JSON
        assert await status(make_jwt({"session_id": "J1"}, secret="other")) == 401
        assert await status(make_jwt({"session_id": "J1"}, header={"alg": "HS512"})) == 401
        unsigned = (b64url(json.dumps({"alg": "none"}).encode()) + "." +
                    b64url(json.dumps({"session_id": "J1"}).encode()) + ".")
        assert await status(unsigned) == 401                                # alg none
        assert await status(make_jwt({"session_id": "J1", "exp": now - 3600})) == 401
        assert await status(make_jwt({"session_id": "J1", "nbf": now + 3600})) == 401
        assert await status(make_jwt({"session_id": "other", "exp": now + 300})) == 403
        assert await status(make_jwt({"sub": "J1"})) == 403                 # no session_id
    asyncio.run(main())
    m = metrics(g)
    for reason, n in (("malformed", 4), ("bad_signature", 1), ("wrong_alg", 2), ("expired", 1),
                      ("not_yet_valid", 1), ("session_mismatch", 2)):
        assert metric(m, "wsgate_auth_failures_total", route="jwt-env", reason=reason) == n, reason


def test_token_as_query_parameter_and_as_subprotocol(redis, jwt_gw):
    g = jwt_gw
    token = make_jwt({"session_id": "B1", "exp": int(time.time()) + 300})

    async def main():
        # Query parameter (secret from the file).
        async with connect(g.url(f"/browser/B1?x=1&access_token={token}")) as ws:
            redis.cli("PUBLISH", "session:B1:down", "via query")
            assert await recv(ws) == "via query"
        assert await handshake_status(g.url("/browser/B1?access_token=bad")) == 400
        assert await handshake_status(
            g.url("/browser/B1?access_token=" + make_jwt({"session_id": "B2"}))) == 403
        # Subprotocol, as a browser does it: new WebSocket(url, ["wsgate.bearer",
        # "wsgate.bearer." + token]). The client library checks that the server selected one of
        # its offers; the server must select the one without the secret.
        async with connect(g.url("/browser/B1"),
                           subprotocols=["wsgate.bearer", "wsgate.bearer." + token]) as ws:
            assert ws.subprotocol == "wsgate.bearer"
            redis.cli("PUBLISH", "session:B1:down", "via subprotocol")
            assert await recv(ws) == "via subprotocol"
        # The token offer alone: refused (no safe subprotocol to select).
        assert await handshake_status(g.url("/browser/B1"),
                                      subprotocols=["wsgate.bearer." + token]) == 400
        # A route without token_subprotocol ignores the offer: the token is missing.
        assert await handshake_status(g.url("/jwt/a/ws/B1"),
                                      subprotocols=["wsgate.bearer", "wsgate.bearer." + token]) == 400
        # redis_token through both places as well (the key is consumed each time).
        redis.cli("SET", "session:R1:auth", "tok-q")
        async with connect(g.url("/redis-browser/R1?access_token=tok-q")) as ws:
            redis.cli("PUBLISH", "session:R1:down", "redis via query")
            assert await recv(ws) == "redis via query"
        redis.cli("SET", "session:R1:auth", "tok-s")
        async with connect(g.url("/redis-browser/R1"),
                           subprotocols=["wsgate.bearer", "wsgate.bearer.tok-s"]) as ws:
            assert ws.subprotocol == "wsgate.bearer"
        assert redis.cli("EXISTS", "session:R1:auth").strip() == "0"
    asyncio.run(main())
    # The token never reaches the log.
    out = g.output()
    assert token not in out and "tok-q" not in out and "tok-s" not in out


def test_jwt_route_refused_when_the_secret_is_missing(tmp_path):
    cases = (
        # (route yaml under pubsub, field the error names)
        ("auth: AUTH_JWT_HS256", "jwt_secret_file"),
        (f"auth: AUTH_JWT_HS256\n      jwt_secret_file: {tmp_path}/absent", "jwt_secret_file"),
        ("auth: AUTH_JWT_HS256\n      jwt_secret_env: WSGATE_TEST_NO_SUCH_VAR", "jwt_secret_env"),
        (f"auth: AUTH_JWT_HS256\n      jwt_secret_env: PATH\n      jwt_secret_file: /dev/null",
         "jwt_secret_file"),
    )
    for body, field in cases:
        config = f"""
routes:
  - name: j
    path: /j/{{session_id}}
    pubsub:
      {body}
"""
        g = Gateway(config, env={"REDIS_URL": ""}, workers=1)
        try:
            g.start(wait=False)
            assert g.wait_exit(20) != 0, body
            assert f"pubsub.{field}" in g.output(), g.output()
        finally:
            g.stop()
            g.tmp.cleanup()


def test_json_validation_and_binary_refusal(redis):
    config = PUBSUB_CONFIG + """
  - name: strict
    path: /strict/{session_id}
    pubsub:
      validate_json: true
      refuse_binary: true
"""
    up = RespSubscriber(redis.port, "session:V:up", "session:D:up")
    try:
        with Gateway(config, env={"REDIS_URL": redis.url}, workers=1) as g:
            async def main():
                async with connect(g.url("/strict/V")) as ws:
                    await ws.send('{"type": "ok"}')
                    assert up.read_message() == ("session:V:up", b'{"type": "ok"}')
                    await ws.send("{not json")
                    await ws.wait_closed()
                    assert ws.close_code == 1003
                    assert ws.close_reason == "message is not valid JSON"
                async with connect(g.url("/strict/V")) as ws:
                    await ws.send(b'{"type": "binary"}')
                    await ws.wait_closed()
                    assert ws.close_code == 1003
                    assert ws.close_reason == "binary messages are not accepted"
                # The defaults (seed 004 forwards whatever the client sends): both published.
                async with connect(g.url("/a/ws/D")) as ws:
                    await ws.send("{not json")
                    await ws.send(b"\x00bin")
                    assert up.read_message() == ("session:D:up", b"{not json")
                    assert up.read_message() == ("session:D:up", b"\x00bin")
            asyncio.run(main())
            # Nothing invalid reached the up channel.
            with pytest.raises(OSError):
                up.read_message(timeout=0.3)
    finally:
        up.close()


def test_route_ping_limits_switch_off_the_pubsub_pinger(redis):
    # The environment asks for pings every 0.2 s; the route with limits.ping_interval_ms leaves
    # pinging to the generic limits pinger (here at 10 minutes), so this kind's own
    # pinger must stay silent there, while it pings on the route without.
    config = PUBSUB_CONFIG + """
  - name: limited
    path: /limited/{session_id}
    limits:
      ping_interval_ms: 600000
      ping_timeout_ms: 600000
    pubsub: {}
"""
    env = {"REDIS_URL": redis.url, "WS_PING_INTERVAL_SECS": "0.2", "WS_PING_TIMEOUT_SECS": "60"}
    g = Gateway(config, env=env, workers=1)
    try:
        g.start(wait=False)
        g.wait_ready()
        status_pinged, _, pinged = raw_handshake(g.port, "/a/ws/pinged")
        status_quiet, _, quiet = raw_handshake(g.port, "/limited/quiet")
        assert (status_pinged, status_quiet) == (101, 101)
        try:
            assert read_frame(pinged)[0] == 0x9  # a ping from the kind's own pinger
            quiet.settimeout(1.0)
            with pytest.raises(socket.timeout):
                read_frame(quiet)
        finally:
            pinged.close()
            quiet.close()
    finally:
        g.stop()
        g.tmp.cleanup()


def test_hung_redis_is_detected_by_the_readiness_probe(redis, gw):
    # SIGSTOP: Redis keeps its TCP connections open and answers nothing. The bus's probe (a
    # PUBLISH on its keepalive channel every second, 3 s without an answer) must notice.
    async def main():
        async with connect(gw.url("/a/ws/hung")) as ws:
            redis.proc.send_signal(signal_module.SIGSTOP)
            try:
                wait_for(lambda: http_request(gw.port, "/ready")[0] == 503, 15,
                         what="/ready 503 while Redis is hung")
                assert metric(metrics(gw), "wsgate_bus_up") == 0
                assert await handshake_status(gw.url("/a/ws/new-while-hung")) == 503
            finally:
                redis.proc.send_signal(signal_module.SIGCONT)
            wait_for(lambda: http_request(gw.port, "/ready")[0] == 200, 20,
                     what="/ready 200 once Redis answers again")
            assert metric(metrics(gw), "wsgate_bus_reconnects_total") >= 1
            # The open session survived and was resubscribed on the new connection.
            wait_for(lambda: numsub(redis, "session:hung:down") == 1, 10, what="resubscription")
            redis.cli("PUBLISH", "session:hung:down", "after the hang")
            assert await recv(ws) == "after the hang"
    asyncio.run(main())
