"""The Godot bridge addon (`engine-bridges/godot/addons/sparky_bridge`), tested for real.

The addon's protocol core (ZMTP client, msgpack decoder, protocol checks, session
tracking, reload planning) is version-neutral GDScript, so it runs here in Debian's
headless Godot 3 (`godot3-server`) against real sockets: a libzmq PUB from pyzmq, the
project's own ``Publisher``, and a hand-driven ZMTP peer on a raw TCP socket where the
test must control every byte (handshake order, partial reads, PING/PONG).

How it works: each test copies the core scripts, ``engine-bridges/godot/tests/run_tests.gd``
(the Godot 3 entry) and ``bridge_tests.gd`` (the version-neutral tests) into a throw-away
Godot 3 project and runs one scenario (``SPARKY_TEST_SCENARIO`` = unit | decode | live).
The runner prints one ``SPARKY <json>`` line per result (Godot flushes stdout per line, so
a test can react to events while Godot runs). Every wait has a timeout and every Godot
process has a deadline, so a hang fails the test instead of blocking CI.

The decoder is checked against every vector in ``tests/vectors`` and, differentially,
against the Python reference decoder on a few thousand mutated bodies (the cases and the
judging are shared with the Godot 4.6 run: ``tests/bridge_cases.py``,
``tests/godot4/test_bridge_godot4.py``). Every ``.gd`` file of the addon is parsed and
linted with gdtoolkit; ``plugin.gd`` (an EditorPlugin) can only run in an editor.

Under ``CI=true`` a missing ``godot3-server`` or gdtoolkit fails (tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import queue
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

from tests.bridge_cases import (
    SESSION_A,
    VECTORS,
    asset,
    body,
    check_differential,
    check_unit_results,
    check_vector,
    decode_cases,
    vector_names,
)

REPO = Path(__file__).resolve().parents[2]
BRIDGE = REPO / "engine-bridges" / "godot"
ADDON = BRIDGE / "addons" / "sparky_bridge"
RUNNER_SCRIPTS = ("run_tests.gd", "bridge_tests.gd")

# Version-neutral scripts (run in Godot 3 here, and in Godot 4 by the plugin).
CORE_SCRIPTS = (
    "msgpack_decoder.gd",
    "protocol.gd",
    "session_tracker.gd",
    "zmtp_client.gd",
    "subscriber.gd",
    "reload_planner.gd",
    "bridge_status.gd",
)
GODOT4_ONLY_SCRIPTS = ("plugin.gd", "runtime.gd", "runtime_reloader.gd", "editor_session.gd", "bridge_settings.gd")

SESSION_B = "b2" * 16
WAIT_S = 10.0

pytestmark = pytest.mark.godot


# ----------------------------------------------------------------- Godot harness


class GodotRun:
    """One running ``godot3-server`` scenario whose ``SPARKY`` lines are collected live."""

    def __init__(self, command: list[str], env: dict[str, str], deadline_s: float) -> None:
        self.deadline_s = deadline_s
        self.started = time.monotonic()
        self.records: list[dict[str, Any]] = []
        self.other_lines: list[str] = []
        self._new: queue.Queue[dict[str, Any]] = queue.Queue()
        self._seen = 0
        self.process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            if line.startswith("SPARKY "):
                record = json.loads(line[len("SPARKY ") :])
                record["_t"] = time.monotonic()
                self.records.append(record)
                self._new.put(record)
            else:
                self.other_lines.append(line)

    def wait_for(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S) -> dict[str, Any]:
        """The next record (after those already consumed) that matches ``predicate``."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting in Godot output:\n{self.transcript()}")
            try:
                record = self._new.get(timeout=min(left, 0.05))
            except queue.Empty:
                if self.process.poll() is not None and self._new.empty():
                    self._reader.join(1)
                    if self._new.empty():
                        raise AssertionError(f"Godot exited while waiting:\n{self.transcript()}") from None
                continue
            if predicate(record):
                return record

    def finish(self, timeout: float = WAIT_S) -> list[dict[str, Any]]:
        """Wait for the scenario to end (its last record is {"done": true})."""
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"Godot did not finish within {timeout}s:\n{self.transcript()}") from None
        self._reader.join(5)
        assert self.records and self.records[-1].get("done"), f"no final record:\n{self.transcript()}"
        return self.records

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def transcript(self) -> str:
        lines = [json.dumps({k: v for k, v in r.items() if k != "_t"})[:300] for r in self.records[-40:]]
        return "\n".join(self.other_lines[-20:] + lines)

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("ev") == kind]

    def stats(self) -> dict[str, Any]:
        found = self.events("stats")
        assert found, f"no stats record:\n{self.transcript()}"
        return found[-1]


class GodotProject:
    """A throw-away Godot 3 project holding the addon's core scripts and the runner."""

    def __init__(self, executable: str, root: Path) -> None:
        self.executable = executable
        self.root = root
        self.home = root / ".home"

    @classmethod
    def create(cls, executable: str, root: Path) -> GodotProject:
        (root / "project.godot").write_text(
            'config_version=4\n\n[application]\n\nconfig/name="sparky_bridge_tests"\n\n'
            "[logging]\n\nfile_logging/enable_file_logging=false\n",
            encoding="utf-8",
        )
        addon = root / "addons" / "sparky_bridge"
        addon.mkdir(parents=True)
        for name in CORE_SCRIPTS:
            shutil.copy2(ADDON / name, addon / name)
        (root / "tests").mkdir()
        for script in RUNNER_SCRIPTS:
            shutil.copy2(BRIDGE / "tests" / script, root / "tests" / script)
        project = cls(executable, root)
        project.home.mkdir()
        return project

    def start(self, scenario: str, deadline_s: float = 30.0, **settings: str) -> GodotRun:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.home),
            "LANG": "en_US.UTF-8",
            "SPARKY_TEST_SCENARIO": scenario,
            "SPARKY_TEST_DEADLINE_MS": str(int(deadline_s * 1000)),
        }
        env.update({f"SPARKY_TEST_{key.upper()}": value for key, value in settings.items()})
        command = [self.executable, "--no-window", "--path", str(self.root), "-s", "res://tests/run_tests.gd"]
        return GodotRun(command, env, deadline_s)

    @contextmanager
    def live(self, endpoint: str, deadline_s: float = 30.0, **settings: str) -> Iterator[GodotRun]:
        run = self.start("live", deadline_s=deadline_s, endpoint=endpoint, **settings)
        try:
            yield run
        finally:
            run.kill()


@pytest.fixture(scope="module")
def godot(tmp_path_factory) -> GodotProject:
    executable = shutil.which("godot3-server")
    if executable is None:
        pytest.skip("godot3-server is not installed (Debian package godot3-server)")
    return GodotProject.create(executable, tmp_path_factory.mktemp("godot3-project"))


@pytest.fixture()
def zmq_context() -> Iterator[zmq.Context]:
    context = zmq.Context()
    yield context
    context.destroy(linger=0)


# ------------------------------------------------------------------ messages


def frames(type_: str, seq: int, session: str = SESSION_A, **fields: Any) -> list[bytes]:
    return [f"sparky.{type_}".encode(), body(type_, seq, session, **fields)]


def hello(seq: int, session: str = SESSION_A, interval_ms: int = 2000) -> list[bytes]:
    return frames("hello", seq, session, interval_ms=interval_ms, build=0)


def make_pub(context: zmq.Context, **options: int) -> tuple[zmq.Socket, str]:
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 100_000)
    pub.setsockopt(zmq.LINGER, 0)
    for name, value in options.items():
        pub.setsockopt(getattr(zmq, name), value)
    pub.bind("tcp://127.0.0.1:0")
    return pub, pub.getsockopt_string(zmq.LAST_ENDPOINT)


def is_message(type_: str | None = None, session: str | None = None) -> Callable[[dict], bool]:
    def match(record: dict) -> bool:
        return (
            record.get("ev") == "message"
            and (type_ is None or record["type"] == type_)
            and (session is None or record["session"] == session)
        )

    return match


def sync(run: GodotRun, pub: zmq.Socket, session: str = SESSION_A, first_seq: int = 1) -> int:
    """Publish hellos until Godot receives one (libzmq applies a subscription
    asynchronously, so earlier messages are dropped by the PUB); returns the next seq."""
    if not run.events("connected"):
        run.wait_for(lambda r: r.get("ev") == "connected")
    seq = first_seq
    end = time.monotonic() + WAIT_S
    while time.monotonic() < end:
        pub.send_multipart(hello(seq, session))
        seq += 1
        try:
            run.wait_for(is_message("hello", session), timeout=0.1)
            return seq
        except AssertionError:
            continue
    raise AssertionError(f"Godot never received a hello:\n{run.transcript()}")


def stop(pub: zmq.Socket, seq: int, session: str = SESSION_A) -> None:
    pub.send_multipart(frames("test-stop", seq, session))


# --------------------------------------------------------------- unit scenario


def test_editor_decision_logic_session_tracking_status_and_frame_encoding(godot):
    """The pure parts in GDScript: reload planning (which res:// files to update_file /
    reimport_files / reload, queueing while the editor scans, full scan on rescan, paths
    outside res:// refused), seq tracking, build-error lines, status texts, and the exact
    bytes of the greeting, READY, subscription and PONG frames."""
    check_unit_results(godot.start("unit").finish(timeout=60))


# -------------------------------------------------------------- decode scenario


@pytest.fixture(scope="module")
def decode_run(godot, tmp_path_factory) -> dict[str, Any]:
    """Decode every vector, handmade case and mutation in one Godot run."""
    folder = tmp_path_factory.mktemp("decode-cases")
    cases = decode_cases()
    (folder / "cases.tsv").write_text(cases.manifest, encoding="utf-8")
    (folder / "cases.bin").write_bytes(cases.blob)
    run = godot.start("decode", cases=str(folder / "cases.tsv"), blob=str(folder / "cases.bin"))
    records = run.finish(timeout=240)
    results = {r["case"]: r for r in records if "case" in r}
    timing = next(r for r in records if "decoded_cases" in r)
    return {"expected": cases.expected, "results": results, "timing": timing, "transcript": run.transcript()}


def test_vectors_are_present():
    names = vector_names()
    assert len(names) >= 100, "tests/vectors/INDEX lists the shared protocol vectors"
    for name in names:
        assert (VECTORS / f"{name}.msgpack").exists() and (VECTORS / f"{name}.json").exists(), name


@pytest.mark.parametrize("name", vector_names())
def test_vector(decode_run, name):
    key = f"vector:{name}"
    check_vector(name, decode_run["expected"][key], decode_run["results"].get(key), decode_run["transcript"])


def test_decoder_agrees_with_the_python_reference_on_edge_cases_and_mutations(decode_run):
    """Differential check: same accept/refuse decision, same error code, same values."""
    check_differential(decode_run["expected"], decode_run["results"])
    timing = decode_run["timing"]
    print(
        f"\ndecoder: {timing['decoded_cases']} bodies decoded and checked in Godot 3, "
        f"{timing['decode_us'] / timing['decoded_cases']:.0f} µs each on average"
    )


# ---------------------------------------------------------------- live: libzmq


def test_handshake_with_a_libzmq_pub(godot, zmq_context):
    """ZMTP 3.0 greeting + READY against libzmq; the connection stays up (libzmq drops
    a peer that subscribes before READY) and the first message is a rescan."""
    pub, endpoint = make_pub(zmq_context)
    launched = time.monotonic()
    with godot.live(endpoint) as run:
        connected = run.wait_for(lambda r: r.get("ev") == "connected")
        next_seq = sync(run, pub)
        first = [r for r in run.records if r.get("ev") == "message"][0]
        stop(pub, next_seq)
        run.finish()
    stats = run.stats()
    assert first["rescan"] is True
    assert stats["handshakes"] == 1 and stats["disconnects"] == 0
    assert connected["handshake_ms"] < 2000
    print(
        f"\nhandshake: {connected['handshake_ms']} ms from connect to subscribed; "
        f"{connected['_t'] - launched:.2f} s from launching Godot to subscribed"
    )


def test_long_frames_and_large_messages(godot, zmq_context):
    """Bodies over 255 bytes use 8-byte ZMTP frame sizes; a 200 KiB message arrives whole."""
    pub, endpoint = make_pub(zmq_context)
    many = [asset("godot", f"s{i}.png", f"res://sprites/s{i}.png", "texture") for i in range(1200)]
    with godot.live(endpoint) as run:
        seq = sync(run, pub)
        medium = frames("assets-changed", seq, build=1, assets=many[:3])
        large = frames("assets-changed", seq + 1, build=1, assets=many)
        assert 255 < len(medium[1]) < 65536 and len(large[1]) > 150_000
        pub.send_multipart(medium)
        pub.send_multipart(large)
        stop(pub, seq + 2)
        run.finish()
    changes = [r for r in run.records if r.get("ev") == "message" and r["type"] == "assets-changed"]
    assert [len(r["plan"]["reimport"]) for r in changes] == [3, 1200]
    assert changes[1]["plan"]["reimport"][-1] == "res://sprites/s1199.png"
    assert not any(r["rescan"] for r in changes)
    assert not run.events("rejected")


def test_ping_from_libzmq_heartbeats_is_answered_with_pong(godot, zmq_context):
    """libzmq sends ZMTP PING every HEARTBEAT_IVL and drops the peer when nothing comes
    back within HEARTBEAT_TIMEOUT; the bridge answers PONG, so the link stays up."""
    pub, endpoint = make_pub(zmq_context, HEARTBEAT_IVL=50, HEARTBEAT_TIMEOUT=200, HEARTBEAT_TTL=2000)
    monitor = pub.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_ACCEPTED)
    with godot.live(endpoint) as run:
        seq = sync(run, pub)
        time.sleep(1.5)  # 30 heartbeat intervals with nothing but PINGs on the wire
        pub.send_multipart(hello(seq))
        run.wait_for(is_message("hello"))
        events = []  # before the stop: Godot's exit closes the connection
        while monitor.poll(100):
            events.append(recv_monitor_message(monitor)["event"])
        stop(pub, seq + 1)
        run.finish()
    pub.disable_monitor()
    stats = run.stats()
    assert stats["pings"] >= 10, stats
    assert stats["pongs"] == stats["pings"]
    assert stats["disconnects"] == 0 and stats["handshakes"] == 1, stats
    assert zmq.EVENT_DISCONNECTED not in events and events.count(zmq.EVENT_ACCEPTED) == 1
    messages = [r for r in run.records if r.get("ev") == "message"]
    assert not messages[-2]["rescan"] and messages[-1]["type"] == "test-stop"


def test_burst_of_1000_messages_arrives_complete_and_in_order(godot, zmq_context):
    pub, endpoint = make_pub(zmq_context)
    kinds = [
        lambda seq: hello(seq),
        lambda seq: frames("build-started", seq, build=seq, trigger=["sprites/hero.png"]),
        lambda seq: frames(
            "assets-changed",
            seq,
            build=seq,
            assets=[
                asset("godot", "chars_0.png", "res://sprites/chars_0.png", "texture"),
                asset("godot", "hero.tres", "res://sprites/hero.tres", "sprite-frames"),
                asset("bevy", "chars_0.png", "sprites/chars_0.png", "texture"),
            ],
        ),
        lambda seq: frames(
            "build-failed",
            seq,
            build=seq,
            errors=[
                {"file": "sparky.toml", "line": 3, "column": 1, "sprite": None, "stage": "manifest", "message": "bad"}
            ],
        ),
        lambda seq: frames("build-finished", seq, build=seq, ok=True, duration_ms=12, changed=3),
    ]
    with godot.live(endpoint, deadline_s=60) as run:
        first = sync(run, pub)
        sent_at = time.monotonic()
        for seq in range(first, first + 1000):
            pub.send_multipart(kinds[seq % len(kinds)](seq))
        stop(pub, first + 1000)
        run.wait_for(is_message("test-stop"), timeout=60)
        received_at = time.monotonic()
        run.finish()
    burst = [r for r in run.records if r.get("ev") == "message" and first <= r["seq"] < first + 1000]
    assert [r["seq"] for r in burst] == list(range(first, first + 1000))
    assert not any(r["rescan"] for r in burst)
    assert not run.events("rejected") and not run.events("disconnected")
    changed = [r for r in burst if r["type"] == "assets-changed"]
    assert all(r["plan"]["reimport"] == ["res://sprites/chars_0.png"] for r in changed)
    assert all(r["plan"]["reload"] == ["res://sprites/hero.tres"] for r in changed)
    per_poll = [sum(1 for r in burst if r["poll"] == poll) for poll in {r["poll"] for r in burst}]
    assert max(per_poll) <= 256, "a burst is spread over polls (frames), 256 messages at most per poll"
    godot_s = (burst[-1]["t_us"] - burst[0]["t_us"]) / 1e6
    print(
        f"\nburst: 1000 messages ({run.stats()['bytes']} bytes on the wire) decoded in {godot_s:.3f} s "
        f"inside Godot ({1000 / max(godot_s, 1e-6):.0f} msg/s); {received_at - sent_at:.3f} s send-to-last"
    )


def test_oversized_message_is_refused_without_hanging_and_the_stream_goes_on(godot, zmq_context):
    """With a 4 KiB bound: a body of exactly 4096 bytes passes, 4 KiB + a little and
    3 MB are skipped as they stream in (never buffered) and reported as oversize, and
    the next message arrives on the same connection, flagged as a rescan (seq gap)."""
    pub, endpoint = make_pub(zmq_context)
    with godot.live(endpoint, max_bytes="4096") as run:
        seq = sync(run, pub)
        base = len(body("hello", seq, interval_ms=2000, build=0, pad=""))
        # "pad" goes from a 1-byte fixstr header to a 3-byte str16 header: 2 bytes more.
        exact = frames("hello", seq, interval_ms=2000, build=0, pad="x" * (4096 - base - 2))
        assert len(exact[1]) == 4096
        pub.send_multipart(exact)
        pub.send_multipart(frames("hello", seq + 1, interval_ms=2000, build=0, pad="x" * 4097))
        pub.send_multipart(frames("hello", seq + 2, interval_ms=2000, build=0, pad="y" * 3_000_000))
        pub.send_multipart(hello(seq + 3))
        stop(pub, seq + 4)
        run.finish(timeout=30)
    rejected = run.events("rejected")
    assert [r["error"] for r in rejected] == ["oversize", "oversize"]
    assert all(r["topic"] == "sparky.hello" for r in rejected)
    messages = [r for r in run.records if r.get("ev") == "message"]
    assert [r["seq"] for r in messages[-3:]] == [seq, seq + 3, seq + 4]
    assert messages[-2]["rescan"] is True  # the refused messages left a seq gap
    assert not run.events("disconnected")


def test_refused_messages_are_reported_and_do_not_stop_the_subscriber(godot, zmq_context):
    pub, endpoint = make_pub(zmq_context)
    with godot.live(endpoint) as run:
        seq = sync(run, pub)
        pub.send_multipart([b"sparky.hello", b"\xc1"])
        pub.send_multipart([b"sparky.build-started", body("hello", seq + 1, interval_ms=1, build=0)])
        pub.send_multipart([b"sparky.hello", body("hello", seq + 2, interval_ms=1, build=0), b"extra"])
        pub.send_multipart(frames("hello", seq + 3, interval_ms="2000", build=0))
        pub.send_multipart(
            frames(
                "build-failed",
                seq + 4,
                build=7,
                errors=[
                    {
                        "file": "sparky.toml",
                        "line": 12,
                        "column": 5,
                        "sprite": "hero",
                        "stage": "palette",
                        "message": "unknown palette 'endesga32'",
                    },
                    {"file": None, "line": None, "column": None, "sprite": None, "stage": None, "message": "boom"},
                ],
            )
        )
        stop(pub, seq + 5)
        run.finish()
    assert [r["error"] for r in run.events("rejected")] == ["malformed", "topic", "malformed", "wrong-type"]
    failed = [r for r in run.records if r.get("ev") == "message" and r["type"] == "build-failed"][0]
    assert failed["rescan"] is True
    assert failed["lines"] == [
        "sparky.toml:12:5: unknown palette 'endesga32' [sprite hero, stage palette]",
        "sparky.toml: boom",
    ]


def test_publisher_restart_mid_stream_reconnects_and_rescans(godot, tmp_path):
    """The project's own Publisher (hello heartbeats) goes away and a new one, with a
    new session, binds the same port: the bridge reconnects by itself and reports a
    rescan for the new session, then trusts its next messages again."""
    from sparky_assets.hotreload.protocol import Asset
    from sparky_assets.hotreload.publisher import Publisher

    first = Publisher("tcp://127.0.0.1:0", project="dungeon", heartbeat_ms=100)
    endpoint = first.last_endpoint
    stop_file = tmp_path / "stop"
    second = None
    try:
        with godot.live(endpoint, stop_file=str(stop_file)) as run:
            run.wait_for(is_message("hello", first.session))
            first.build_started(1, ["sprites/hero.png"])
            started = run.wait_for(is_message("build-started", first.session))
            assert started["rescan"] is False
            first.close()
            run.wait_for(lambda r: r.get("ev") == "disconnected")
            deadline = time.monotonic() + WAIT_S
            while second is None:
                try:
                    second = Publisher(endpoint, project="dungeon", heartbeat_ms=100)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            assert second.session != first.session
            rescan = run.wait_for(is_message(session=second.session))
            second.assets_changed(
                1,
                [
                    Asset(
                        target="godot",
                        path="hero.tres",
                        engine_path="res://sprites/hero.tres",
                        kind="sprite-frames",
                        change="modified",
                        hash="cd" * 32,
                        sprites=("hero",),
                        atlas="characters",
                    )
                ],
            )
            changed = run.wait_for(is_message("assets-changed", second.session))
            stop_file.write_text("stop")
            run.finish()
    finally:
        first.close()
        if second is not None:
            second.close()
    assert rescan["rescan"] is True
    assert changed["rescan"] is False
    assert changed["plan"]["reload"] == ["res://sprites/hero.tres"] and changed["plan"]["scan"] is False
    stats = run.stats()
    assert stats["handshakes"] == 2 and stats["disconnects"] == 1


# ------------------------------------------------------- live: hand-driven peer


def zmtp_greeting(as_server: int = 1) -> bytes:
    return (
        b"\xff"
        + b"\x00" * 7
        + b"\x01\x7f"
        + b"\x03\x00"
        + b"NULL".ljust(20, b"\x00")
        + bytes([as_server])
        + b"\x00" * 31
    )


def zmtp_frame(payload: bytes, more: bool = False, command: bool = False) -> bytes:
    flags = (1 if more else 0) | (4 if command else 0)
    if len(payload) > 255:
        return bytes([flags | 2]) + struct.pack(">Q", len(payload)) + payload
    return bytes([flags, len(payload)]) + payload


def zmtp_command(name: bytes, data: bytes) -> bytes:
    return zmtp_frame(bytes([len(name)]) + name + data, command=True)


def recv_exact(conn: socket.socket, count: int) -> bytes:
    data = b""
    while len(data) < count:
        chunk = conn.recv(count - len(data))
        if not chunk:
            raise AssertionError(f"peer closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def recv_frame(conn: socket.socket) -> tuple[int, bytes]:
    flags = recv_exact(conn, 1)[0]
    size = struct.unpack(">Q", recv_exact(conn, 8))[0] if flags & 2 else recv_exact(conn, 1)[0]
    return flags, recv_exact(conn, size)


def trickle(conn: socket.socket, data: bytes, rng: random.Random) -> None:
    """Send in 1–7 byte pieces with pauses, so frames straddle the bridge's polls."""
    position = 0
    while position < len(data):
        size = rng.randint(1, 7)
        conn.sendall(data[position : position + size])
        position += size
        time.sleep(0.0005)


def test_subscribes_only_after_ready_and_parses_frames_split_across_reads(godot):
    """A hand-driven ZMTP peer checks every byte the bridge writes: the greeting (3.0,
    NULL, client), READY with Socket-Type SUB, *no* subscription until the peer's READY,
    then "\\x01sparky."; it then trickles messages (short and long frames) and a PING
    a few bytes at a time and expects a PONG echoing the PING's context."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT_S)
    port = server.getsockname()[1]
    rng = random.Random(7)
    with godot.live(f"tcp://127.0.0.1:{port}") as run:
        conn, _ = server.accept()
        conn.settimeout(WAIT_S)
        greeting = recv_exact(conn, 64)
        assert greeting[0] == 0xFF and greeting[9] == 0x7F
        assert greeting[10:12] == b"\x03\x00", "announces ZMTP 3.0"
        assert greeting[12:32] == b"NULL".ljust(20, b"\x00") and greeting[32] == 0
        conn.sendall(zmtp_greeting())
        flags, ready = recv_frame(conn)
        assert flags == 0x04 and ready == b"\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB"
        conn.settimeout(0.5)
        with pytest.raises(socket.timeout):
            conn.recv(1)  # nothing more may come before our READY
        conn.settimeout(WAIT_S)
        conn.sendall(zmtp_command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x03PUB"))
        assert recv_frame(conn) == (0x00, b"\x01sparky.")
        run.wait_for(lambda r: r.get("ev") == "connected")

        long_body = body("build-started", 2, build=1, trigger=[f"art/{i:04d}.png" for i in range(40)])
        assert len(long_body) > 255
        stream = b"".join(
            [
                zmtp_frame(b"sparky.hello", more=True) + zmtp_frame(body("hello", 1, interval_ms=2000, build=0)),
                zmtp_command(b"PING", b"\x00\x0a" + b"ctx-1234"),
                zmtp_frame(b"sparky.build-started", more=True) + zmtp_frame(long_body),
                zmtp_frame(b"sparky.test-stop", more=True) + zmtp_frame(body("test-stop", 3)),
            ]
        )
        trickle(conn, stream, rng)
        assert recv_frame(conn) == (0x04, b"\x04PONGctx-1234")
        run.finish()
        conn.close()
    server.close()
    messages = [r for r in run.records if r.get("ev") == "message"]
    assert [(r["type"], r["seq"], r["rescan"]) for r in messages] == [
        ("hello", 1, True),
        ("build-started", 2, False),
        ("test-stop", 3, False),
    ]
    stats = run.stats()
    assert stats["pings"] == 1 and stats["pongs"] == 1


def accept_subscriber(server: socket.socket) -> socket.socket:
    """Accept the bridge's connection and complete the ZMTP handshake as a PUB."""
    conn, _ = server.accept()
    conn.settimeout(WAIT_S)
    recv_exact(conn, 64)
    conn.sendall(zmtp_greeting())
    recv_frame(conn)
    conn.sendall(zmtp_command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x03PUB"))
    assert recv_frame(conn) == (0x00, b"\x01sparky.")
    return conn


def send_message(conn: socket.socket, parts: list[bytes]) -> None:
    conn.sendall(zmtp_frame(parts[0], more=True) + zmtp_frame(parts[1]))


def test_a_silent_publisher_is_dropped_after_three_heartbeat_intervals(godot):
    """The TCP link stays open but no message comes: after 3 × interval_ms (from the
    last hello) the bridge reconnects by itself; the same session continues without a
    rescan when no message was lost."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT_S)
    port = server.getsockname()[1]
    with godot.live(f"tcp://127.0.0.1:{port}") as run:
        conn = accept_subscriber(server)
        send_message(conn, hello(1, interval_ms=100))
        heard = run.wait_for(is_message("hello"))
        dropped = run.wait_for(lambda r: r.get("ev") == "disconnected", timeout=5)
        second = accept_subscriber(server)
        send_message(second, frames("test-stop", 2))
        run.finish()
        conn.close()
        second.close()
    server.close()
    assert "3 heartbeat intervals" in dropped["reason"]
    silence = (dropped["t_us"] - heard["t_us"]) / 1e6
    assert 0.28 <= silence < 1.5, silence  # 3 × 100 ms, measured from the record, not the poll
    stop_record = [r for r in run.records if r.get("ev") == "message"][-1]
    assert stop_record["type"] == "test-stop" and stop_record["rescan"] is False
    assert run.stats()["handshakes"] == 2


def test_bad_peers_are_dropped_and_retried_with_backoff(godot):
    """A peer with a wrong signature, then one asking for the CURVE mechanism, then one
    that closes mid-frame: each connection is dropped and the bridge keeps retrying."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(WAIT_S)
    port = server.getsockname()[1]
    with godot.live(f"tcp://127.0.0.1:{port}", deadline_s=20) as run:
        accepted = []
        conn, _ = server.accept()
        accepted.append(time.monotonic())
        recv_exact(conn, 64)
        conn.sendall(b"HTTP/1.1 200 OK\r\n" + b"\x00" * 64)
        run.wait_for(lambda r: r.get("ev") == "disconnected" and "signature" in r["reason"])
        conn.close()
        conn, _ = server.accept()
        accepted.append(time.monotonic())
        recv_exact(conn, 64)
        conn.sendall(zmtp_greeting()[:12] + b"CURVE".ljust(20, b"\x00") + b"\x00" * 32)
        run.wait_for(lambda r: r.get("ev") == "disconnected" and "CURVE" in r["reason"])
        conn.close()
        conn, _ = server.accept()
        accepted.append(time.monotonic())
        recv_exact(conn, 64)
        conn.sendall(zmtp_greeting())
        recv_frame(conn)
        conn.sendall(zmtp_command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x03PUB"))
        recv_frame(conn)
        conn.sendall(zmtp_frame(b"sparky.hello", more=True) + b"\x02\x00\x00")  # long frame cut short
        conn.close()
        run.wait_for(lambda r: r.get("ev") == "disconnected" and "closed" in r["reason"])
        conn, _ = server.accept()
        accepted.append(time.monotonic())
        conn.close()
    server.close()
    gaps = [later - earlier for earlier, later in zip(accepted, accepted[1:])]
    assert all(gap >= 0.09 for gap in gaps), gaps  # backoff starts at 100 ms
    assert not run.events("message")


# ------------------------------------------------------------------ gdtoolkit


def gdtoolkit_tool(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} (PyPI gdtoolkit) is not installed")
    return found


def addon_scripts() -> list[Path]:
    return sorted(ADDON.glob("*.gd")) + sorted((BRIDGE / "tests").glob("*.gd"))


def test_every_addon_script_parses_and_is_lint_clean():
    scripts = addon_scripts()
    names = {path.name for path in scripts}
    assert set(CORE_SCRIPTS) | set(GODOT4_ONLY_SCRIPTS) <= names
    for tool in ("gdparse", "gdlint"):
        result = subprocess.run([gdtoolkit_tool(tool), *map(str, scripts)], capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{tool}:\n{result.stdout}\n{result.stderr}"


def test_core_scripts_avoid_version_specific_gdscript():
    """The core (and the tests both engines run) must load in Godot 3 and 4: no `extends`, no annotations, no typed
    declarations, no PoolByteArray/PackedByteArray names, no API that only one of the
    two engines has (a Godot 3 run would not catch a Godot-4-only name)."""
    forbidden = [
        "extends ",
        "class_name",
        "@",
        "PoolByteArray",
        "PackedByteArray",
        "PoolStringArray",
        "PackedStringArray",
        ":=",
        "-> ",
        "yield(",
        "await ",
        "onready",
        "export ",
        "OS.get_ticks",
        "Time.",
        "ord(",
        "TYPE_REAL",
        "TYPE_FLOAT",
        ".empty()",
        ".is_empty()",
        "to_utf8()",
        "to_utf8_buffer",
        "FileAccess",
        "File.new",
        "funcref",
        "Callable",
    ]
    neutral = [ADDON / name for name in CORE_SCRIPTS] + [BRIDGE / "tests" / "bridge_tests.gd"]
    for path in neutral:
        name = path.name
        code_lines = [
            line.split("#", 1)[0] if not line.lstrip().startswith("#") else ""
            for line in path.read_text(encoding="utf-8").splitlines()
        ]
        for number, line in enumerate(code_lines, 1):
            stripped = line.strip()
            hits = [word for word in forbidden if word in stripped and not _inside_string(stripped, word)]
            assert not hits, f"{name}:{number}: {hits} in {stripped!r}"
            if stripped.startswith(("var ", "const ")) and ":" in stripped.split("=", 1)[0]:
                raise AssertionError(f"{name}:{number}: typed declaration {stripped!r}")


def _inside_string(line: str, word: str) -> bool:
    index = line.find(word)
    return line[:index].count('"') % 2 == 1


# ------------------------------------------------------- exporter ↔ bridge paths

EXPORT_MANIFEST = """
[project]
name = "bridge-check"
out = "build/sprites"
palette = "endesga-32"
seed = {seed}

[[sprite]]
name = "hero"
style = "character"
size = [16, 16]
animations = {{ idle = 2, walk = 3 }}

[[sprite]]
name = "slime"
style = "creature"
size = [16, 16]
animations = {{ idle = 4 }}
{coin}
[[atlas]]
name = "things"
sprites = ["*"]
max_size = 32

[export.godot]
project = "game"
dir = "art/sprites"

[export.bevy]
assets = "bevy/assets"
dir = "sprites"
"""

EXPORT_COIN = """
[[sprite]]
name = "coin"
style = "item"
size = [8, 8]
"""


def test_every_res_path_the_godot_exporter_writes_is_accepted_and_reimported(godot, tmp_path):
    """Real builds of a small manifest (added, then modified, then a sprite removed),
    published by the real Publisher: every ``ext_resource path="res://…"`` the Godot
    exporter writes passes the addon's path filter and is reimported for the build
    that changed it; every SpriteFrames/AtlasTexture is reloaded; nothing is refused."""
    import re

    from sparky_assets.hotreload.publisher import Publisher
    from sparky_assets.pipeline.engine import Builder
    from sparky_assets.watch.session import protocol_assets

    project = tmp_path / "project"
    game = project / "game"
    game.mkdir(parents=True)
    (game / "project.godot").write_text("config_version=5\n", encoding="utf-8")
    manifest = project / "sparky.toml"
    steps = [
        ("added", {"seed": 7, "coin": EXPORT_COIN}),
        ("modified", {"seed": 8, "coin": EXPORT_COIN}),
        ("removed", {"seed": 8, "coin": ""}),
    ]
    stop_file = tmp_path / "stop"
    publisher = Publisher("tcp://127.0.0.1:0", project="bridge-check", heartbeat_ms=200)
    try:
        with godot.live(publisher.last_endpoint, deadline_s=120, stop_file=str(stop_file)) as run:
            run.wait_for(is_message("hello", publisher.session))
            for build, (label, settings) in enumerate(steps, start=1):
                manifest.write_text(EXPORT_MANIFEST.format(**settings), encoding="utf-8")
                report = Builder(manifest, durable=False).build()
                assets = protocol_assets(report)
                godot_assets = [a for a in assets if a.target == "godot"]
                assert any(a.change == label for a in godot_assets), (label, godot_assets)
                publisher.assets_changed(build, assets)
                plan = run.wait_for(is_message("assets-changed", publisher.session), timeout=30)["plan"]
                assert plan["refused"] == [] and plan["scan"] is False, plan

                ext_paths = set()
                for tres in sorted(game.rglob("*.tres")):
                    ext_paths |= set(re.findall(r'\[ext_resource [^\]]*path="(res://[^"]+)"', tres.read_text()))
                assert ext_paths, "the Godot export references its page textures"
                changed = {a.engine_path: a for a in godot_assets}
                for path in ext_paths:
                    assert (game / path.removeprefix("res://")).is_file(), f"{path} points at no file"
                    if path in changed and changed[path].change != "removed":
                        assert path in plan["reimport"], (label, path, plan)
                assert ext_paths <= {p for p, a in changed.items() if a.kind == "texture"} or label == "removed"
                assert plan["update"] == [a.engine_path for a in godot_assets]
                assert plan["reimport"] == [
                    a.engine_path for a in godot_assets if a.kind == "texture" and a.change != "removed"
                ]
                assert plan["first_import"] == [
                    a.engine_path for a in godot_assets if a.kind == "texture" and a.change == "added"
                ]
                assert plan["reload"] == [
                    a.engine_path
                    for a in godot_assets
                    if a.kind in ("sprite-frames", "atlas-texture") and a.change != "removed"
                ]
                if label == "removed":
                    assert "res://art/sprites/coin.tres" in plan["update"]
                    assert "res://art/sprites/coin.tres" not in plan["reload"]
            stop_file.write_text("stop")
            run.finish(timeout=30)
    finally:
        publisher.close()
    assert not run.events("rejected")
