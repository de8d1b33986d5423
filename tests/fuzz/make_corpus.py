#!/usr/bin/env python3
"""Writes the seed corpora in corpus/<target>/ (run from anywhere; overwrites the files it names,
leaves others -- e.g. inputs a fuzzer run found and someone added -- alone)."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def frame(opcode, payload=b"", fin=True, mask=None, rsv=0, force_len=None):
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload) if force_len is None else force_len
    mbit = 0x80 if mask is not None else 0
    if n <= 125 and force_len is None:
        h = bytes([b0, mbit | n])
    elif n <= 0xFFFF and force_len is None:
        h = bytes([b0, mbit | 126]) + struct.pack(">H", n)
    else:
        h = bytes([b0, mbit | 127]) + struct.pack(">Q", n)
    if mask is not None:
        h += mask
        payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
    return h + payload


K = b"\x37\xfa\x21\x3d"
CLIENT = 0x80  # control byte of fuzz_frame_scanner: top bit = from client; bits 4-6 = read sizes


def frame_scanner():
    return {
        "masked_text": bytes([CLIENT]) + frame(1, b"Hello", mask=K),
        "server_text": bytes([0x10]) + frame(1, b"Hello"),
        "len16_binary": bytes([CLIENT | 0x20]) + frame(2, bytes(range(256)), mask=K),
        # a 64-bit length (70000) with only the first bytes of its payload: seeds stay small
        "len64_binary": bytes([CLIENT | 0x30]) + frame(2, b"x" * 70000, mask=K)[:300],
        "len64_header_only": bytes([CLIENT]) + frame(2, b"", mask=K, force_len=1 << 40),
        "len64_top_bit": bytes([CLIENT]) + frame(2, b"", mask=K, force_len=1 << 63),
        "fragmented": bytes([CLIENT | 0x10]) + frame(1, b"Hel", fin=False, mask=K)
        + frame(9, b"ping", mask=K) + frame(0, b"lo", mask=K),
        "ping_pong_close": bytes([0x40]) + frame(9, b"") + frame(10, b"pong") + frame(8, b"\x03\xe8bye"),
        "control_too_long": bytes([CLIENT]) + frame(9, b"p" * 126, mask=K),
        "rsv_bits": bytes([CLIENT]) + frame(1, b"x", mask=K, rsv=0x40),
        "reserved_opcode": bytes([CLIENT]) + frame(3, b"x", mask=K),
        "unmasked_from_client": bytes([CLIENT]) + frame(1, b"x"),
        "lone_continuation": bytes([CLIENT]) + frame(0, b"x", mask=K),
        "non_minimal_len": bytes([CLIENT | 0x50]) + frame(1, b"abc", mask=K, force_len=3)[:2]
        + b"",  # header only; the scanner waits for more
        "split_header": bytes([CLIENT | 0x0]) + frame(1, b"a" * 300, mask=K)[:3],
    }


UPGRADE = (b"GET /chat?room=1 HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")


def request_head():
    return {
        "upgrade": UPGRADE,
        "upgrade_then_frame": UPGRADE + frame(1, b"hi", mask=K),
        "plain_get": b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
        "http10": b"GET / HTTP/1.0\r\n\r\n",
        "post_body": b"POST /api HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
        "chunked": b"POST /api HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "version_8": UPGRADE.replace(b"Version: 13", b"Version: 8"),
        "no_version": UPGRADE.replace(b"Sec-WebSocket-Version: 13\r\n", b""),
        "bad_key": UPGRADE.replace(b"dGhlIHNhbXBsZSBub25jZQ==", b"short=="),
        "two_keys": UPGRADE.replace(b"Origin", b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nOrigin"),
        "incomplete": UPGRADE[:60],
        "obs_fold": b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: a\r\n b\r\n\r\n",
        "bare_lf": b"GET / HTTP/1.1\nHost: x\n\n",
        "http2_preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        "tls_hello": bytes.fromhex("160301020001000200fc03"),
        "long_header": b"GET / HTTP/1.1\r\nX: " + b"a" * 200 + b"\r\n\r\n",
    }


ACCEPT_101 = (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")


def ws_handshake():
    # control byte % 3: 0 = response parser, 1 = request builder, 2 = 101 builder + parser
    r = b"\x00"
    return {
        "resp_accepted": r + ACCEPT_101 + b"\r\n",
        "resp_accepted_proto": r + ACCEPT_101 + b"Sec-WebSocket-Protocol: chat\r\n\r\n",
        "resp_accepted_then_frame": r + ACCEPT_101 + b"\r\n" + frame(1, b"hello"),
        "resp_wrong_accept": r + ACCEPT_101.replace(b"s3pP", b"AAAA") + b"\r\n",
        "resp_extension": r + ACCEPT_101 + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        "resp_two_protocols": r + ACCEPT_101 + b"Sec-WebSocket-Protocol: a, b\r\n\r\n",
        "resp_403": r + b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n",
        "resp_http10": r + b"HTTP/1.0 101 Switching Protocols\r\n\r\n",
        "resp_incomplete": r + ACCEPT_101,
        "resp_garbage": r + b"SSH-2.0-OpenSSH_9.2\r\n",
        "req_plain": b"\x01chat\nsuperchat\n\nOrigin:http://example.com\nX-Forwarded-For: 10.0.0.1\n",
        "req_bad_tokens": b"\x01bad proto\nok\n\nBad Name:v\nX-Ok:va\x01lue\nHost:evil\nX-Tab:\ta\tb \n",
        "req_no_protocols": b"\x01\nAuthorization: Bearer abc\nCookie: a=b; c=d\n",
        "switching_chat": b"\x02chat",
        "switching_none": b"\x02",
    }


def http_bridge():
    return {
        "seed_get": b'{\n  "url": "http://example.com/api/resource",\n  "method": "GET",\n  "data": {"key": "value"}\n}\n',
        "seed_post": b'{\n  "url": "http://example.com/api/resource",\n  "method": "POST",\n  "data": {"key": "value"}\n}\n',
        "put_headers_id": b'{"id": 7, "url": "https://api.example.com/v1/x?a=1#f", "method": "PUT", '
        b'"headers": {"X-Trace": "abc", "Content-Type": "text/plain"}, "data": "raw", "timeout_ms": 2500}',
        "delete_data_query": b'{"id": "r-1", "url": "http://h/p?x=1", "method": "DELETE", "data": {"a": [1, 2], "b": null, "c": "d e"}}',
        "head": b'{"url": "http://h/", "method": "HEAD"}',
        "bad_method": b'{"id": 1.5, "url": "http://h/", "method": "TRACE"}',
        "missing_url": b'{"id": 1e400, "method": "GET"}',
        "header_crlf": b'{"url": "http://h/", "method": "GET", "headers": {"X": "a\\r\\nHost: evil"}}',
        "host_header": b'{"url": "http://h/", "method": "GET", "headers": {"Host": "evil"}}',
        "not_object": b'["url", "http://h/"]',
        "deep": b'{"url": "http://h/", "method": "POST", "data": ' + b"[" * 70 + b"]" * 70 + b"}",
        "bad_utf8": b'{"url": "http://h/\xff", "method": "GET"}',
        "big_id": b'{"id": 18446744073709551616, "url": "http://h/", "method": "GET", "timeout_ms": -1}',
    }


def external_client():
    return {
        "seed_connect": b'{\n  "type": "connect_external",\n  "url": "wss://echo.websocket.org",\n  "protocols": ["protocol1", "protocol2"],\n  "headers": {\n    "Authorization": "Bearer token"\n  }\n}\n',
        "seed_send": b'{\n  "type": "send_message",\n  "content": "Hello WebSocket server!",\n  "message_type": "text"\n}\n',
        "seed_disconnect": b'{\n  "type": "disconnect_external"\n}\n',
        "send_binary": b'{"type": "send_message", "content": "AAEC/w==", "message_type": "binary"}',
        "send_binary_bad_b64": b'{"type": "send_message", "content": "***", "message_type": "binary"}',
        "send_object": b'{"type": "send_message", "content": {"a": 1}}',
        "connect_bad_header": b'{"type": "connect_external", "url": "ws://h/", "headers": {"Sec-WebSocket-Key": "x", "X": "a\\nb"}}',
        "unknown_type": b'{"type": "user_presence", "user": "u"}',
        "not_json": b"connect_external ws://h/",
        "deep": b"[" * 100 + b"]" * 100,
        "utf16_escape": b'{"type": "send_message", "content": "\\ud83d\\ude00 \\u0000"}',
    }


def url():
    return {
        "http": b"http://example.com/api/resource",
        "https_port_query": b"https://API.Example.com:8443/v1/x?a=1&b=%20#frag",
        "ws_ipv4": b"ws://127.0.0.1:8765/ws",
        "wss_ipv6": b"wss://[::1]:443/",
        "ipv6_zone": b"http://[fe80::1%25eth0]/",
        "userinfo": b"http://user:pass@h/",
        "no_path": b"https://h",
        "trailing_dot": b"http://example.com./a",
        "bad_port": b"http://h:99999/",
        "bad_scheme": b"ftp://h/",
        "redirect_relative": b"http://h/a/b?q\n../c?d",
        "redirect_absolute": b"https://h/\nhttp://other:81/x",
        "redirect_scheme_rel": b"https://h/\n//cdn.example/x",
        "backslash": b"http://h\\@evil/",
        "percent_host": b"http://%65vil.com/",
        "space": b"http://h/a b",
    }


def target_policy():
    return {
        "allowed": b"https://api.example.com/v1/items",
        "allowed_wildcard_port": b"http://a.example.org:8080/x",
        "wrong_port": b"http://a.example.org/x",
        "dot_segment": b"https://api.example.com/v1/../admin",
        "encoded_dot": b"https://api.example.com/v1/%2e%2e/admin",
        "loopback_ws": b"ws://127.0.0.1/",
        "metadata": b"wss://169.254.169.254/latest/meta-data",
        "private_v6": b"wss://[fd00::1]/",
        "mapped_v4": b"wss://[::ffff:10.0.0.1]/",
        "decimal_ip": b"wss://2130706433/",
        "rule_then_url": b"https://*.example.net:443/api\nhttps://x.example.net/api/y",
        "rule_any": b"*://*\nhttp://h/",
        "rule_bad": b"https://[::1\nhttps://h/",
        "range_name": b"private",
        "addr16_v4": bytes([10, 0, 0, 1]) + bytes(12),
        "addr16_v6": bytes.fromhex("fe800000000000000000000000000001"),
    }


def path_template():
    return {
        "literal": b"/ws\n/ws",
        "params": b"/rooms/{room}/users/{user}\n/rooms/lobby/users/ann",
        "percent": b"/files/{name}\n/files/a%20b",
        "bad_percent": b"/files/{name}\n/files/a%zz",
        "trailing_slash": b"/a/{b}/\n/a/x/",
        "unclosed": b"/a/{b\n/a/x",
        "empty_param": b"/a/{}\n/a/x",
        "dup_param": b"/{x}/{x}\n/1/2",
        "mixed_segment": b"/a/pre{x}post\n/a/preXpost",
        "root": b"/\n/",
        "no_slash": b"ws\nws",
        "query": b"/ws/{id}\n/ws/1?x=2",
    }


def b64u(b):
    import base64
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def jwt():
    import hashlib
    import hmac
    secret = b"fuzz-secret-0123456789abcdef"

    def token(header, claims, key=secret):
        si = b64u(header) + b"." + b64u(claims)
        return si + b"." + b64u(hmac.new(key, si, hashlib.sha256).digest())

    h = b'{"alg":"HS256","typ":"JWT"}'
    return {
        "valid": token(h, b'{"session_id":"sess-1","exp":1700000100}'),
        "expired": token(h, b'{"session_id":"sess-1","exp":1600000000}'),
        "not_yet": token(h, b'{"session_id":"sess-1","nbf":1800000000}'),
        "wrong_session": token(h, b'{"session_id":"other"}'),
        "alg_none": b64u(b'{"alg":"none"}') + b"." + b64u(b'{"session_id":"sess-1"}') + b".",
        "crit": token(b'{"alg":"HS256","crit":["x"]}', b'{"session_id":"sess-1"}'),
        "bad_sig": token(h, b'{"session_id":"sess-1"}', key=b"wrong"),
        "two_segments": b"eyJhbGciOiJIUzI1NiJ9.eyJzZXNzaW9uX2lkIjoic2Vzcy0xIn0",
        "claims_exp_string": b'{"session_id":"sess-1","exp":"tomorrow"}',
        "claims_exp_huge": b'{"session_id":"sess-1","exp":1e300,"nbf":-1e300}',
        "claims_array": b'["session_id"]',
        "padding": b"e30=.e30=.AAAA",
    }


def redis_url():
    return {
        "plain": b"redis://localhost:6379",
        "db": b"redis://redis:6379/2",
        "password": b"redis://:s3cret@redis:6379/0",
        "user_password": b"redis://app:p%40ss@redis/",
        "ipv6": b"redis://[::1]:6380",
        "tls": b"rediss://redis:6379",
        "no_port": b"redis://redis",
        "port_zero": b"redis://redis:0",
        "db_huge": b"redis://redis/99999999999",
        "query": b"redis://redis/0?timeout=1",
        "unclosed_bracket": b"redis://[::1:6379",
        "empty": b"redis://",
    }


def read(path):
    with open(os.path.join(HERE, "..", "..", path), "rb") as f:
        return f.read()


def config_yaml():
    return {
        "example": read("examples/wsgate.yaml"),
        "docs_minimal": b"""server:
  port: 8080
  workers: 2
routes:
  - name: echo
    path: /echo
    echo: {}
  - name: backend
    path: /ws/{client_id}
    websocket:
      upstreams: ["ws://10.0.0.5:9000/socket", "ws://10.0.0.6:9000/socket"]
      forward_headers: [authorization, cookie]
      set_headers: {x-gateway: wsgate}
      connect_timeout_ms: 5000
    limits:
      max_message_bytes: 1048576
""",
        "outbound_kinds": b"""routes:
  - name: bridge
    path: /bridge
    http_bridge:
      allowed_targets: ["http://127.0.0.1:*", "https://api.example.com/v1/*"]
      allowed_address_ranges: [loopback, private]
      max_in_flight: 2
      max_request_bytes: 100
      follow_redirects: true
      max_redirects: 3
      tls: {verify: VERIFY_OFF}
  - name: ext
    path: /api/websocket/connect/{client_id}
    external_client:
      allowed_targets: ["ws://127.0.0.1:*", "wss://localhost:*"]
      messages_per_minute: 5
      connect_timeout_ms: 1000
      client_id_param: client_id
""",
        "fanout_kinds": b"""server: {redis_url: "redis://127.0.0.1:6379/0", max_connections: 100}
default_limits: {messages_per_second: 10.5, burst: 20, rate_policy: RATE_POLICY_CLOSE}
routes:
  - name: chat
    path: /chat/{room}/{client_id}
    room: {room_param: room, format: FORMAT_JSON}
  - name: agent
    path: /{agent_id}/ws/{session_id}
    pubsub:
      auth: AUTH_REDIS_TOKEN
      token_subprotocol: true
      token_query_param: access_token
      validate_json: true
      refuse_binary: true
""",
        "camel_case": b'{"routes": [{"name": "e", "path": "/e", "echo": {}, '
        b'"limits": {"maxMessageBytes": "65536", "pingIntervalMs": 1000}}]}',
        "empty": b"",
        "unknown_field": b"routes:\n  - name: echo\n    path: /echo\n    echo: {}\n    colour: red\n",
        "duplicate_shape": b"routes:\n  - {name: a, path: /x/{a}, echo: {}}\n"
        b"  - {name: b, path: /x/{b}, echo: {}}\n",
        "bad_upstream": b"routes:\n  - name: p\n    path: /p\n    websocket:\n"
        b"      upstreams: [http://x/]\n",
        "anchors": b"base: &b {name: e, path: /e, echo: {}}\nroutes: [*b]\n",
        "syntax_error": b"routes: [ {name: e, path: /e\n",
        "wrong_types": b"server: {port: [1]}\nroutes: {name: x}\n",
    }


def admin_body():
    # First byte: method index << 2 | 2 (enveloped, streaming) | 1 (JSON). The methods in order:
    # RouteService List/Get/Put/DeleteRoute (0-3), LimitService Get/UpdateLimits (4-5),
    # SessionService List/Get/Close/SendTo Session, WatchSessions, Publish (6-11), GetInventory (12).
    def m(i, body, json=True, streaming=False):
        return bytes([(i << 2) | (2 if streaming else 0) | (1 if json else 0)]) + body

    def env(body):
        return b"\x00" + struct.pack(">I", len(body)) + body

    return {
        "list_routes": m(0, b"{}"),
        "list_routes_empty": m(0, b""),
        "get_route": m(1, b'{"name": "echo"}'),
        "put_route": m(2, b'{"route": {"name": "echo2", "path": "/echo2", "echo": {}}, '
                      b'"expectedVersion": "3"}'),
        "put_route_ws": m(2, b'{"route": {"name": "p", "path": "/ws/{client_id}", "websocket": '
                         b'{"upstreams": ["ws://127.0.0.1:9001/x"], "setHeaders": {"x-a": "b"}}, '
                         b'"limits": {"messagesPerSecond": 2.5}}}'),
        "delete_route": m(3, b'{"name": "echo2", "expected_version": 4}'),
        "get_limits": m(4, b'{"route": "echo"}'),
        "update_limits": m(5, b'{"route": "", "limits": {"max_message_bytes": 1024}, '
                          b'"updateMask": "maxMessageBytes,burst"}'),
        "list_sessions": m(6, b'{"route": "echo", "state": "SESSION_STATE_OPEN", "pageSize": 10, '
                          b'"pageToken": "abc"}'),
        "close_session": m(8, b'{"id": "s-1", "code": 1000, "reason": "bye"}'),
        "send_text": m(9, b'{"id": "s-1", "text": "hi \\u00e9"}'),
        "send_binary": m(9, b'{"id": "s-1", "binary": "AAEC/w=="}'),
        "watch_enveloped": m(10, env(b'{"route": "echo"}'), streaming=True),
        "publish": m(11, b'{"channel": "session:1", "text": "x"}'),
        "inventory": m(12, b"{}"),
        "binary_get_route": m(1, b"\x0a\x04echo", json=False),
        "binary_watch": m(10, env(b"\x0a\x04echo"), json=False, streaming=True),
        "bad_envelope": m(10, b"\x01\x00\x00\x00\x02{}", streaming=True),
        "unknown_field": m(1, b'{"name": "x", "colour": 1}'),
        "wrong_type": m(8, b'{"id": 5, "code": -1}'),
    }


CORPORA = {
    "frame_scanner": frame_scanner,
    "request_head": request_head,
    "ws_handshake": ws_handshake,
    "http_bridge_codec": http_bridge,
    "external_client_codec": external_client,
    "url": url,
    "target_policy": target_policy,
    "path_template": path_template,
    "jwt_hs256": jwt,
    "redis_url": redis_url,
    "config_yaml": config_yaml,
    "admin_body": admin_body,
}

for target, make in CORPORA.items():
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name, data in make().items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
