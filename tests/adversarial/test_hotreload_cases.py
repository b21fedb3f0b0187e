"""Hot reload under hostile peers and hostile manifests: real ZeroMQ sockets on loopback.

* The PUB socket survives garbage, oversized frames (``ZMQ_MAXMSGSIZE``: the peer is
  dropped before its frame is buffered, so memory stays flat), stalled handshakes and a
  hundred subscribers, and keeps delivering to well-behaved ones.
* ``listen --json`` prints strict JSON whatever a publisher sends (no ``NaN``), and a
  huge frame from a publisher is dropped, not buffered.
* ``watch`` validates the whole manifest before binding: a refused or malformed
  endpoint is exit 2 at its ``sparky.toml:line:col``.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import re
import socket
import threading
import time

import msgpack
import pytest
import zmq

from sparky_assets.hotreload.listener import run_listen
from sparky_assets.hotreload.publisher import MAX_INBOUND_BYTES, Publisher
from tests.adversarial.rig import check_run, cli


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _rss() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


class Subscriber:
    """A well-behaved subscriber: it must keep getting every build-started."""

    def __init__(self, ctx: zmq.Context, endpoint: str):
        self.socket = ctx.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"sparky.")
        self.socket.connect(endpoint)

    def wait_for(self, publisher: Publisher, build: int, timeout: float = 20.0) -> None:
        """Send build-started ``build`` until it arrives (a SUB joins asynchronously)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            publisher.build_started(build, ["x"])
            if self.socket.poll(200):
                while self.socket.poll(0):
                    topic, body = self.socket.recv_multipart()
                    if topic == b"sparky.build-started" and msgpack.unpackb(body)["build"] == build:
                        return
        raise AssertionError(f"build-started {build} never arrived")


@pytest.fixture()
def publisher():
    pub = Publisher("tcp://127.0.0.1:0", "adversarial", heartbeat_ms=100)
    ctx = zmq.Context()
    yield pub, ctx
    pub.close()
    ctx.destroy(linger=0)


def test_garbage_bytes_do_not_stop_delivery(publisher):
    pub, ctx = publisher
    sub = Subscriber(ctx, pub.last_endpoint)
    sub.wait_for(pub, 1)
    peers = []
    for payload in (os.urandom(65536), b"\xff" + b"\x00" * 8 + b"\x7f" + os.urandom(4096), b"GET / HTTP/1.1\r\n\r\n"):
        s = socket.create_connection(("127.0.0.1", _port(pub.last_endpoint)))
        try:
            s.sendall(payload)
        except OSError:
            pass  # libzmq may drop the peer before it has sent everything
        peers.append(s)
    sub.wait_for(pub, 2)
    for s in peers:
        s.close()
    sub.wait_for(pub, 3)


def test_stalled_handshakes_do_not_block_anyone(publisher):
    pub, ctx = publisher
    stalled = [socket.create_connection(("127.0.0.1", _port(pub.last_endpoint))) for _ in range(64)]
    for s in stalled[::2]:
        s.sendall(b"\xff\x00\x00")  # half a greeting, then nothing
    sub = Subscriber(ctx, pub.last_endpoint)
    sub.wait_for(pub, 1)
    for s in stalled:
        s.close()


def test_a_hundred_subscribers_all_hear_a_build(publisher):
    pub, ctx = publisher
    subs = [Subscriber(ctx, pub.last_endpoint) for _ in range(100)]
    for i, sub in enumerate(subs):
        sub.wait_for(pub, 10 + i)


def _zmtp_sub(port: int) -> socket.socket:
    """A raw TCP peer that completes a ZMTP 3.0 NULL handshake as a SUB socket."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"\xff" + b"\0" * 8 + b"\x7f" + b"\x03\x00" + b"NULL".ljust(20, b"\0") + b"\0" * 32)
    greeting = b""
    while len(greeting) < 64:
        chunk = s.recv(64 - len(greeting))
        assert chunk, "publisher closed during the greeting"
        greeting += chunk
    ready = b"\x05READY" + b"\x0bSocket-Type" + (3).to_bytes(4, "big") + b"SUB"
    s.sendall(b"\x04" + bytes([len(ready)]) + ready)
    return s


def test_an_oversized_frame_is_refused_on_its_header(publisher):
    """A peer announces a 1 GiB frame and streams it: libzmq (ZMQ_MAXMSGSIZE) drops the
    peer on the header, so only what the kernel buffers gets through and the publisher's
    memory does not grow by what is sent; a well-behaved subscriber keeps receiving."""
    pub, ctx = publisher
    sub = Subscriber(ctx, pub.last_endpoint)
    sub.wait_for(pub, 1)
    before = _rss()
    peer = _zmtp_sub(_port(pub.last_endpoint))
    peer.sendall(b"\x02" + (1 << 30).to_bytes(8, "big"))  # a long frame of 1 GiB follows…
    sent, chunk = 0, b"x" * (1 << 20)
    peer.settimeout(10)
    try:
        while sent < 256 << 20:
            peer.sendall(chunk)
            sent += len(chunk)
    except OSError:
        pass  # reset by the publisher
    finally:
        peer.close()
    assert sent < 64 << 20, f"the publisher accepted {sent >> 20} MiB of one frame"
    assert _rss() - before < 32 << 20
    sub.wait_for(pub, 2)
    assert MAX_INBOUND_BYTES <= 4096


def _raw_publisher():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    return ctx, pub, f"tcp://127.0.0.1:{port}"


def _hello(seq: int, **extra) -> bytes:
    return msgpack.packb(
        {
            "v": 1,
            "type": "hello",
            "seq": seq,
            "session": "5f0c8a3e9b2d4f6a8c1e7b3d5a9f2c4e",
            "project": "p",
            "interval_ms": 2000,
            "build": 0,
            **extra,
        },
        use_bin_type=True,
    )


@contextlib.contextmanager
def listening_json():
    """``listen --json`` (run_listen) on a thread against a raw, hostile PUB socket:
    yields the socket and the output; stops both afterwards."""
    ctx, pub, endpoint = _raw_publisher()
    out, err, stop = io.StringIO(), io.StringIO(), threading.Event()
    thread = threading.Thread(
        target=run_listen, kwargs=dict(endpoint=endpoint, json_lines=True, out=out, err=err, stop_event=stop)
    )
    thread.start()
    try:
        yield pub, out
    finally:
        stop.set()
        thread.join(10)
        ctx.destroy(linger=0)
    assert not thread.is_alive()


def _send_until(pub, out: io.StringIO, marker: str, frames, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while marker not in out.getvalue() and time.monotonic() < deadline:
        pub.send_multipart(frames())
        time.sleep(0.1)


def test_listen_json_never_prints_nan():
    weird = {"x-nan": math.nan, "x-inf": math.inf, "x-neg": -math.inf}
    with listening_json() as (pub, out):
        _send_until(pub, out, '"event":"message"', lambda: [b"sparky.hello", _hello(1, **weird)])
    records = [
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in {line}"))
        for line in out.getvalue().splitlines()
    ]
    (record,) = [r for r in records if r["event"] == "message"][:1]
    assert record["message"]["x-nan"] == "NaN" and record["message"]["x-inf"] == "Infinity"
    assert record["message"]["x-neg"] == "-Infinity"


def test_a_huge_frame_from_a_publisher_is_dropped():
    """The listener bounds inbound frames too: a 64 MiB frame never reaches it (libzmq
    ends the connection on the frame header) and it stays up, printing nothing of it."""
    with listening_json() as (pub, out):
        _send_until(pub, out, '"event"', lambda: [b"sparky.hello", _hello(1)])  # connected and heard
        before = _rss()
        for _ in range(3):
            pub.send_multipart([b"sparky.hello", b"\x00" * (64 << 20)])
        _send_until(pub, out, "never printed", lambda: [b"sparky.hello", _hello(2)], timeout=2.0)
        assert _rss() - before < 3 * (64 << 20)  # the publisher's own copies, not the listener's
    assert all(len(line) < 1 << 20 for line in out.getvalue().splitlines())


# -- watch refuses before binding ----------------------------------------------

WATCH_CASES = [
    # id, appended manifest text, extra CLI args, location regex, fragments
    (
        "remote-endpoint",
        '[hot_reload]\nendpoint = "tcp://0.0.0.0:5557"\n',
        [],
        r"sparky\.toml:28:1",
        ["refusing to bind"],
    ),
    (
        "allow-remote-string",
        '[hot_reload]\nallow_remote = "false"\nendpoint = "tcp://0.0.0.0:5557"\n',
        [],
        r"sparky\.toml:28:",
        ["wrong type"],
    ),
    ("endpoint-int", "[hot_reload]\nendpoint = 5\n", [], r"sparky\.toml:28:", ["wrong type"]),
    ("endpoint-bad-port", '[hot_reload]\nendpoint = "tcp://127.0.0.1:99999"\n', [], r"sparky\.toml:28:1", []),
    ("endpoint-malformed", '[hot_reload]\nendpoint = "tcp://[::1"\n', [], r"sparky\.toml:28:1", []),
    (
        "endpoint-dns-name",
        '[hot_reload]\nendpoint = "tcp://example.com:5557"\n',
        [],
        r"sparky\.toml:28:1",
        ["refusing"],
    ),
    ("cli-remote-endpoint", "", ["--endpoint", "tcp://0.0.0.0:5557"], r"--endpoint", ["refusing to bind"]),
    ("invalid-manifest", "[sprites]\n", [], r"sparky\.toml:27:", ["unknown section"]),
    ("project-int", None, [], r"sparky\.toml:1:", ["wrong type"]),
]


@pytest.mark.parametrize("case", WATCH_CASES, ids=[c[0] for c in WATCH_CASES])
def test_watch_refuses_before_binding(project, case, monkeypatch):
    _, appended, args, where, fragments = case
    if appended is None:
        project.manifest.write_text("project = 1\n")
    else:
        project.manifest.write_text(project.manifest.read_text() + appended)
    from sparky_assets.watch.session import WatchSession

    # a case that wrongly binds must not watch forever: the session stops at once (exit 0)
    monkeypatch.setattr(WatchSession, "run", lambda self: None)
    outcome = cli("watch", str(project.root), *args)
    check_run(project, outcome, 2, where=where, contains=tuple(fragments), outside_before=project.outside_before)
    assert not re.search(r"watching .* publishing on", outcome.text)
