#!/usr/bin/env python3
"""Generates docs/operate.md from docs/operate.md.in by running every command it shows.

Usage: gen_operate.py [--wsgate BIN] [--grpcurl BIN] [--template IN] [--out OUT]

Starts a fresh wsgate on its built-in demo config (no --config), on free loopback ports and
with --state-dir in a temporary directory, runs the template's commands in order and writes each
command with its real output (stdout and stderr, as a terminal shows them) in place of its marker.
Standard library only. Exit status: 0 written; 1 a command did not end as the template expects
(the output file is then left as it was); 2 bad usage or no wsgate / grpcurl.

Markers (HTML comments, so the template reads as markdown; the command is the comment's body,
run by bash from the repository root, written with the default ports 8080, 8081 and 50051):

  <!-- run [fail] -->          run it, wait for it; show `$ command` and its output. Without
  ...command...                `fail` it must exit 0, with `fail` it must exit non-zero.
  -->
  <!-- start NAME [fail] [wait=TEXT] [input] -->
  ...command...                start it in the background (stdin kept open with `input`); if
  -->                          wait=TEXT, go on once TEXT is in its output. Shown here: the command,
                               and its output after it unless an `output NAME` marker follows.
  <!-- output NAME -->         wait for NAME to end (at most 60 s); show its output here.

In commands and outputs the run's real ports are shown as the defaults (8080 data, 8081 admin,
50051 gRPC); terminal control sequences of interactive clients are left out.
"""
import argparse
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MARKER = re.compile(r"<!-- (?:(output) (\S+) -->\n|(run|start)\b([^\n]*)\n(.*?)-->\n)", re.S)
DEFAULT_PORTS = {"data": 8080, "admin": 8081, "grpc": 50051}
ANSI = re.compile(r"\x1b(\[[0-9;?]*[A-Za-z]|[78])")
WAIT_S = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Background:
    """A command started in the background; its output collected by a thread."""

    def __init__(self, name, command, env, keep_stdin, expect_fail):
        self.name, self.command, self.expect_fail = name, command, expect_fail
        self.proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE if keep_stdin else subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.chunks = []
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
            with self.lock:
                self.chunks.append(chunk)

    def text(self):
        with self.lock:
            return b"".join(self.chunks).decode("utf-8", "replace")

    def wait_for(self, needle, timeout=WAIT_S):
        deadline = time.monotonic() + timeout
        while needle not in self.text():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: never printed {needle!r}; it printed:\n"
                                   + self.text())
            time.sleep(0.02)

    def finish(self, timeout=WAIT_S):
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"{self.name}: still running after {timeout} s; it printed:\n"
                               + self.text())
        self.reader.join(5)
        if (code != 0) != self.expect_fail:
            raise RuntimeError(f"{self.name}: exit status {code}, expected "
                               f"{'non-zero' if self.expect_fail else '0'}; it printed:\n"
                               + self.text())
        return self.text()

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only what it started
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Gateway:
    def __init__(self, binary, workdir):
        self.ports = {k: free_port() for k in DEFAULT_PORTS}
        self.log_path = os.path.join(workdir, "wsgate.log")
        self.args = [binary, "--workers", "2", "--listen", "127.0.0.1",
                     "--grpc-listen", "127.0.0.1", "--port", str(self.ports["data"]),
                     "--admin-port", str(self.ports["admin"]),
                     "--grpc-port", str(self.ports["grpc"]),
                     "--state-dir", os.path.join(workdir, "state")]
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wsgate exited with {self.proc.returncode}:\n" + self.log_text())
            try:
                url = f"http://127.0.0.1:{self.ports['admin']}/ready"
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("wsgate not ready after 30 s:\n" + self.log_text())
            time.sleep(0.05)

    def log_text(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    def to_real(self, command):
        for key, default in DEFAULT_PORTS.items():
            command = re.sub(rf"(?<=localhost:){default}\b", str(self.ports[key]), command)
        return command

    def to_shown(self, text):
        for key, default in DEFAULT_PORTS.items():
            text = re.sub(rf"(?<=localhost:|127\.0\.0\.1:){self.ports[key]}\b", str(default), text)
        return text


def clean(text):
    """What a terminal shows: no control sequences, no interactive prompt, no blank lines."""
    text = ANSI.sub("", text).replace("\r", "")
    lines = [re.sub(r"^(> )+", "", line) for line in text.split("\n")]
    return "\n".join(line for line in lines if line.strip())


def block(body):
    body = body.rstrip("\n")
    return f"```console\n{body}\n```\n"


def shown_command(command):
    return "\n".join(("$ " if i == 0 else "") + line
                     for i, line in enumerate(command.rstrip("\n").split("\n")))


def generate(template, gateway, env):
    pieces = []       # strings, or callables giving a string once everything ran
    background = {}
    later = set(m.group(2) for m in MARKER.finditer(template) if m.group(1))
    position = 0
    for m in MARKER.finditer(template):
        pieces.append(template[position:m.start()])
        position = m.end()
        if m.group(1):  # <!-- output NAME -->
            name = m.group(2)
            if name not in background:
                raise RuntimeError(f"output {name}: no such background command before it")
            out = clean(gateway.to_shown(background[name].finish()))
            pieces.append(block(out))
            continue
        kind, options, command = m.group(3), shlex.split(m.group(4)), m.group(5)
        real = gateway.to_real(command)
        print(f"gen_operate: {kind} {' '.join(options)}: {command.splitlines()[0][:90]}",
              flush=True)
        if kind == "run":
            proc = subprocess.run(["bash", "-c", real], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=WAIT_S)
            output = proc.stdout.decode("utf-8", "replace")
            if (proc.returncode != 0) != ("fail" in options):
                raise RuntimeError(f"exit status {proc.returncode} from:\n{command}\n"
                                   f"which printed:\n{output}")
            pieces.append(block(shown_command(command) + "\n" + clean(gateway.to_shown(output))))
        else:  # start
            name = options[0]
            flags = dict(o.split("=", 1) if "=" in o else (o, True) for o in options[1:])
            bg = Background(name, real, env, "input" in flags, "fail" in flags)
            background[name] = bg
            if "wait" in flags:
                bg.wait_for(flags["wait"])
            if name in later:
                pieces.append(block(shown_command(command)))
            else:
                pieces.append(lambda bg=bg, command=command: block(
                    shown_command(command) + "\n" + clean(gateway.to_shown(bg.finish()))))
    pieces.append(template[position:])
    try:
        return "".join(p() if callable(p) else p for p in pieces)
    finally:
        for bg in background.values():
            bg.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--wsgate", default=os.environ.get(
        "WSGATE_BIN", os.path.join(ROOT, "build/controlplane/main/wsgate")))
    parser.add_argument("--grpcurl", default=os.path.join(ROOT, ".tools/bin/grpcurl"))
    parser.add_argument("--template", default=os.path.join(ROOT, "docs/operate.md.in"))
    parser.add_argument("--out", default=os.path.join(ROOT, "docs/operate.md"))
    args = parser.parse_args()
    for what, path in (("wsgate", args.wsgate), ("grpcurl", args.grpcurl)):
        if not os.access(path, os.X_OK):
            print(f"gen_operate: no {what} at {path} (make build; .ci/install-docs-tools.sh)",
                  file=sys.stderr)
            return 2
    with open(args.template, encoding="utf-8") as f:
        template = f.read()
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(os.path.abspath(args.grpcurl)) + os.pathsep + env["PATH"]
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="wsgate-docs.")
    gateway = None
    try:
        gateway = Gateway(os.path.abspath(args.wsgate), workdir)
        print(f"gen_operate: wsgate ready on data {gateway.ports['data']}, admin "
              f"{gateway.ports['admin']}, gRPC {gateway.ports['grpc']} (log {gateway.log_path})",
              flush=True)
        text = generate(template, gateway, env)
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"gen_operate: {e}", file=sys.stderr)
        if gateway:
            gateway.stop()
            print("gen_operate: wsgate's log:\n" + gateway.log_text(), file=sys.stderr)
        print(f"gen_operate: {args.out} left as it was; {workdir} kept", file=sys.stderr)
        return 1
    code = gateway.stop()
    if code != 0:
        print(f"gen_operate: wsgate exited with {code} on SIGTERM:\n" + gateway.log_text(),
              file=sys.stderr)
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    header = ("<!-- Generated by docs/gen_operate.py from docs/operate.md.in (`make docs`); "
              "edit the template, not this file. -->\n")
    with open(args.out + ".tmp", "w", encoding="utf-8") as f:
        f.write(header + text)
    os.replace(args.out + ".tmp", args.out)
    print(f"gen_operate: wrote {os.path.relpath(args.out, ROOT)} in "
          f"{time.monotonic() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
