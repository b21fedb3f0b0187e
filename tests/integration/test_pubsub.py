"""Real pyzmq PUB/SUB on loopback: publisher, reference listener, rescan logic, CLI output.

Subscribers join late (ZeroMQ's slow joiner: a SUB only gets messages sent after its
subscription reached the PUB), so tests wait for a heartbeat before publishing, and
use short heartbeat intervals instead of sleeps.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import zmq

from sparky_assets.hotreload.listener import (
    Rescan,
    SessionTracker,
    format_message,
    listen,
    run_listen,
)
from sparky_assets.hotreload.protocol import (
    MAX_MESSAGE_BYTES,
    Asset,
    BuildError,
    BuildFinished,
    BuildStarted,
    Envelope,
    Hello,
    ProtocolError,
    decode,
    encode,
)
from sparky_assets.hotreload.publisher import (
    SPLIT_BYTES,
    Publisher,
    check_bind_endpoint,
    is_loopback_endpoint,
)

WAIT_S = 10.0
SESSION = "5f0c8a3e9b2d4f6a8c1e7b3d5a9f2c4e"


def make_asset(index: int, change: str = "modified", path_padding: str = "") -> Asset:
    path = f"sprites/{path_padding}mob_{index:05d}.tres"
    return Asset(
        target="godot",
        path=path,
        engine_path="res://" + path,
        kind="sprite-frames",
        change=change,
        hash="" if change == "removed" else f"{index:064x}",
        sprites=(f"mob{index}",),
        atlas="mobs",
    )


@dataclass
class Received:
    """Everything a listener thread reported, with a condition to wait on."""

    envelopes: list[Envelope] = field(default_factory=list)
    rescans: list[tuple[int, Rescan]] = field(default_factory=list)  # (index in envelopes, rescan)
    errors: list[tuple[str, bytes]] = field(default_factory=list)
    silences: list[float] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def on_message(self, envelope: Envelope, rescan: Rescan | None) -> None:
        with self.changed:
            if rescan is not None:
                self.rescans.append((len(self.envelopes), rescan))
            self.envelopes.append(envelope)
            self.changed.notify_all()

    def on_error(self, error: ProtocolError, topic: bytes) -> None:
        with self.changed:
            self.errors.append((error.code, topic))
            self.changed.notify_all()

    def on_silence(self, seconds: float) -> None:
        with self.changed:
            self.silences.append(seconds)
            self.changed.notify_all()

    def wait_for(self, predicate: Callable[[], bool], what: str, timeout: float = WAIT_S) -> None:
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError(
                    f"timed out after {timeout} s waiting for {what}; got {len(self.envelopes)} messages, "
                    f"rescans {[r.reason for _, r in self.rescans]}, errors {self.errors}"
                )

    def sessions_seen(self) -> set[str]:
        with self.changed:
            return {envelope.session for envelope in self.envelopes}


class ListenerThread:
    """Runs :func:`listen` in a thread; stops and joins on exit."""

    def __init__(self, endpoint: str, **kwargs) -> None:
        self.received = Received()
        self.stop = threading.Event()
        connected = threading.Event()
        self.thread = threading.Thread(
            target=listen,
            args=(endpoint,),
            kwargs=dict(
                on_message=self.received.on_message,
                on_error=self.received.on_error,
                on_silence=self.received.on_silence,
                stop_event=self.stop,
                on_connected=connected.set,
                poll_ms=20,
                **kwargs,
            ),
            daemon=True,
        )
        self.thread.start()
        assert connected.wait(WAIT_S)

    def __enter__(self) -> ListenerThread:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "listener did not stop"


def hellos_from(received: Received, session: str) -> Callable[[], bool]:
    return lambda: any(e.session == session and isinstance(e.message, Hello) for e in received.envelopes)


# --------------------------------------------------------------------------- publisher ↔ listener


def test_hello_then_heartbeats_with_consecutive_seq():
    with Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=50) as publisher:
        assert publisher.seq == 1, "hello is sent as soon as the socket is bound"
        with ListenerThread(publisher.last_endpoint) as listener:
            received = listener.received
            received.wait_for(lambda: len(received.envelopes) >= 4, "4 heartbeats")
    hellos = [e.message for e in received.envelopes]
    assert all(isinstance(m, Hello) and m.interval_ms == 50 and m.build == 0 for m in hellos)
    assert {m.session for m in hellos} == {publisher.session} and len(publisher.session) == 32
    seqs = [m.seq for m in hellos]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert [(index, rescan.reason) for index, rescan in received.rescans] == [(0, "first")]
    assert received.errors == []


def test_burst_of_5000_arrives_complete_and_in_order_while_heartbeats_interleave():
    # A 5 ms heartbeat thread sends concurrently with the burst: seq must stay gap-free.
    with Publisher("tcp://127.0.0.1:*", "dungeon", heartbeat_ms=5) as publisher:
        assert publisher.send_hwm == 100_000, "libzmq's default (1,000) silently drops a flood on PUB"
        with ListenerThread(publisher.last_endpoint) as listener:
            received = listener.received
            received.wait_for(hellos_from(received, publisher.session), "a heartbeat")
            started = time.perf_counter()
            for build in range(1, 2501):
                publisher.build_started(build, ["sparky.toml"])
                publisher.build_finished(build, True, duration_ms=build, changed=0)
            sent_s = time.perf_counter() - started
            last_seq = publisher.seq
            received.wait_for(lambda: received.envelopes and received.envelopes[-1].seq >= last_seq, "the burst")
    envelopes = received.envelopes
    seqs = [e.seq for e in envelopes]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "a seq gap: a message was lost or reordered"
    builds = [e.message for e in envelopes if isinstance(e.message, (BuildStarted, BuildFinished))]
    assert len(builds) == 5000, "nothing of the burst may be dropped"
    assert [m.build for m in builds if isinstance(m, BuildStarted)] == list(range(1, 2501))
    assert len(received.rescans) == 1 and received.errors == []
    heartbeats_during = sum(isinstance(e.message, Hello) for e in envelopes) - 1
    print(f"5000 messages sent in {sent_s * 1000:.0f} ms with {heartbeats_during} heartbeats interleaved")


def test_publisher_restart_is_reported_as_a_new_session():
    first = Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=30)
    endpoint = first.last_endpoint
    with ListenerThread(endpoint) as listener:
        received = listener.received
        received.wait_for(hellos_from(received, first.session), "the first publisher")
        first.build_started(1)
        first.close()
        with Publisher(endpoint, "dungeon", heartbeat_ms=30) as second:
            received.wait_for(hellos_from(received, second.session), "the restarted publisher")
            assert second.session != first.session
    reasons = [(rescan.reason, rescan.previous_session) for _, rescan in received.rescans]
    assert reasons == [("first", None), ("new-session", first.session)]
    index = received.rescans[1][0]
    assert received.envelopes[index].session == second.session


def test_refused_messages_are_reported_and_the_next_valid_one_triggers_a_rescan():
    context = zmq.Context()
    pub = context.socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind("tcp://127.0.0.1:*")
    endpoint = pub.getsockopt_string(zmq.LAST_ENDPOINT)
    try:
        with ListenerThread(endpoint, context=context) as listener:
            received = listener.received
            probe = 0
            while not received.envelopes:  # slow joiner: resend seq 1 until it is heard
                probe += 1
                pub.send_multipart(encode(Hello(session=SESSION, seq=1, project="p", interval_ms=50, build=0)))
                with received.changed:
                    received.changed.wait(0.02)
                assert probe < 500
            topic, body = encode(Hello(session=SESSION, seq=2, project="p", interval_ms=50, build=0))
            pub.send_multipart([topic, body.replace(b"\xa1v\x01", b"\xa1v\x02")])  # seq 2 at version 2
            pub.send_multipart([b"sparky.hello", body, b"third frame"])
            pub.send_multipart([b"sparky.build-started", body])  # topic mismatch
            pub.send_multipart([b"sparky.hello", b"\xc1"])
            pub.send_multipart(encode(Hello(session=SESSION, seq=3, project="p", interval_ms=50, build=0)))
            pub.send_multipart(encode(Hello(session=SESSION, seq=4, project="p", interval_ms=50, build=0)))
            received.wait_for(lambda: any(e.seq == 4 for e in received.envelopes), "seq 4")
    finally:
        pub.close(0)
        context.term()
    assert [code for code, _ in received.errors] == ["version", "malformed", "topic", "malformed"]
    after_probe = [(e.seq, None if rescan is None else rescan.reason) for e, rescan in _with_rescans(received)]
    assert after_probe[-2:] == [(3, "gap"), (4, None)]
    gap = received.rescans[-1][1]
    assert (gap.expected_seq, gap.seq) == (2, 3)


def _with_rescans(received: Received) -> list[tuple[Envelope, Rescan | None]]:
    by_index = dict(received.rescans)
    return [(envelope, by_index.get(index)) for index, envelope in enumerate(received.envelopes)]


def test_listener_reports_silence_after_three_heartbeat_intervals():
    publisher = Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=40)
    with ListenerThread(publisher.last_endpoint) as listener:
        received = listener.received
        received.wait_for(hellos_from(received, publisher.session), "a heartbeat")
        assert received.silences == []
        publisher.close()
        received.wait_for(lambda: bool(received.silences), "a silence notice")
    assert received.silences[0] >= 3 * 0.040
    assert len(received.silences) == 1, "one notice per silence, not one per poll"


def test_listener_stops_promptly_without_a_publisher():
    with ListenerThread("tcp://127.0.0.1:1") as listener:  # nothing listens on port 1
        time.sleep(0.05)
        started = time.perf_counter()
        listener.stop.set()
        listener.thread.join(WAIT_S)
        assert not listener.thread.is_alive()
        assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("endpoint", ["tcp://localhost:0", "tcp://[::1]:*", "ipc"])
def test_other_loopback_endpoints_carry_messages(endpoint):
    if endpoint == "ipc":
        folder = tempfile.mkdtemp(prefix="sparky-ipc-")
        endpoint = f"ipc://{os.path.join(folder, 'hotreload.sock')}"
    try:
        publisher = Publisher(endpoint, "dungeon", heartbeat_ms=30)
    except OSError as error:
        # A host without IPv6 loopback: the error must name the endpoint, never a bare zmq error.
        assert "[::1]" in endpoint and endpoint in str(error)
        return
    with publisher, ListenerThread(publisher.last_endpoint) as listener:
        listener.received.wait_for(hellos_from(listener.received, publisher.session), f"a heartbeat on {endpoint}")


# --------------------------------------------------------------------------- publisher rules


@pytest.mark.parametrize(
    "endpoint",
    ["tcp://0.0.0.0:5557", "tcp://*:5557", "tcp://192.168.1.20:5557", "tcp://[::]:5557", "tcp://eth0:5557"],
)
def test_non_loopback_bind_is_refused_without_allow_remote(endpoint):
    assert not is_loopback_endpoint(endpoint)
    with pytest.raises(ValueError) as caught:
        Publisher(endpoint, "dungeon")
    text = str(caught.value)
    assert endpoint in text and "--allow-remote" in text and "no authentication" in text
    assert "file names" in text and "tcp://127.0.0.1" in text
    check_bind_endpoint(endpoint, allow_remote=True)  # the user asked for it: allowed


def test_unknown_transport_is_refused_without_allow_remote():
    with pytest.raises(ValueError, match="expected tcp://127.0.0.1:PORT"):
        check_bind_endpoint("udp://127.0.0.1:5557", allow_remote=False)


@pytest.mark.parametrize(
    "endpoint", ["tcp://127.0.0.1:5557", "tcp://127.1.2.3:*", "tcp://localhost:0", "tcp://[::1]:5557", "ipc:///tmp/x"]
)
def test_loopback_endpoints_are_accepted(endpoint):
    assert is_loopback_endpoint(endpoint)
    check_bind_endpoint(endpoint, allow_remote=False)


def test_a_bind_failure_names_the_endpoint():
    with Publisher("tcp://127.0.0.1:0", "a", heartbeat_ms=1000) as first:
        with pytest.raises(OSError, match="could not bind hot-reload endpoint"):
            Publisher(first.last_endpoint, "b")


def test_build_started_updates_the_build_in_heartbeats_and_seq_counts_everything():
    with Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=60_000, session=SESSION) as publisher:
        assert (publisher.seq, publisher.session) == (1, SESSION)
        started = publisher.build_started(3, ["sparky.toml"])
        assert (started.seq, started.trigger) == (2, ("sparky.toml",))
        assert publisher.assets_changed(3, []) == [], "no assets: no message"
        failed = publisher.build_failed(3, [BuildError(message="bad palette", file="sparky.toml", line=2)])
        finished = publisher.build_finished(3, ok=False, duration_ms=5, changed=0)
        beat = publisher.hello()
        assert [failed.seq, finished.seq, beat.seq] == [3, 4, 5]
        assert beat.build == 3
        with pytest.raises(ProtocolError) as caught:
            publisher.assets_changed(3, [Asset(**{**make_asset(1).__dict__, "path": "../escape"})])
        assert caught.value.code == "path"
        assert publisher.seq == 5, "a refused message uses no seq number"
    assert publisher.closed
    publisher.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        publisher.hello()


def test_a_large_change_set_is_split_under_the_size_bound():
    assets = [make_asset(i, path_padding="x" * 200 + "/") for i in range(4000)]
    with Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=60_000) as publisher:
        messages = publisher.assets_changed(9, assets)
    assert len(messages) >= 3
    assert [asset for message in messages for asset in message.assets] == assets
    assert [m.seq for m in messages] == list(range(2, 2 + len(messages)))
    for message in messages:
        topic, body = encode(message)
        assert len(body) <= SPLIT_BYTES + 1024 < MAX_MESSAGE_BYTES
        assert decode(topic, body) == message


def test_heartbeat_interval_must_be_positive():
    with pytest.raises(ValueError, match="heartbeat_ms must be a positive int"):
        Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=0)


# --------------------------------------------------------------------------- listener logic and output


def test_session_tracker_rules():
    tracker = SessionTracker()
    assert tracker.observe("a" * 32, 7).reason == "first"
    assert tracker.observe("a" * 32, 8) is None
    gap = tracker.observe("a" * 32, 11)
    assert (gap.reason, gap.expected_seq) == ("gap", 9) and "2 messages lost" in gap.describe()
    duplicate = tracker.observe("a" * 32, 11)
    assert duplicate.reason == "gap" and "duplicate or out of order" in duplicate.describe()
    restart = tracker.observe("b" * 32, 1)
    assert (restart.reason, restart.previous_session) == ("new-session", "a" * 32)
    assert tracker.observe("b" * 32, 2) is None


def test_format_message_one_liners():
    common = {"session": SESSION, "seq": 12, "project": "dungeon"}
    from sparky_assets.hotreload.protocol import AssetsChanged, BuildFailed

    changed = AssetsChanged(
        **common,
        build=3,
        assets=[
            Asset(
                target="godot",
                path="sprites/hero.tres",
                engine_path="res://sprites/hero.tres",
                kind="sprite-frames",
                change="modified",
                hash="a" * 64,
                sprites=("hero",),
            ),
            Asset(
                target="bevy",
                path="sprites/c.atlas.ron",
                engine_path="sprites/c.atlas.ron",
                kind="atlas",
                change="added",
                hash="b" * 64,
            ),
            Asset(
                target="texturepacker",
                path="c.json",
                engine_path=None,
                kind="metadata",
                change="modified",
                hash="c" * 64,
            ),
            make_asset(4, change="removed"),
        ],
    )
    assert format_message(changed) == (
        "#12 assets-changed build 3: 4 assets, 1 added, 2 modified, 1 removed "
        "(godot:res://sprites/hero.tres, bevy:sprites/c.atlas.ron, texturepacker:c.json, … +1 more)"
    )
    failed = BuildFailed(
        **common,
        build=4,
        errors=[
            BuildError(
                message="unknown palette", file="sparky.toml", line=3, column=9, sprite="hero", stage="manifest"
            ),
            BuildError(message="disk full"),
        ],
    )
    assert format_message(failed) == (
        "#12 build-failed build 4: 2 errors: sparky.toml:3:9: unknown palette [sprite hero] [manifest] (+1 more)"
    )
    assert format_message(BuildStarted(**common, build=1, trigger=())) == "#12 build-started build 1: initial build"
    assert format_message(BuildFinished(**common, build=1, ok=True, duration_ms=231, changed=1)) == (
        "#12 build-finished build 1: ok in 231 ms, 1 asset changed"
    )


@pytest.mark.parametrize("json_lines", [False, True], ids=["text", "json"])
def test_run_listen_prints_messages_rescans_and_stops(json_lines):
    out, err = io.StringIO(), io.StringIO()
    stop = threading.Event()
    connected = threading.Event()
    with Publisher("tcp://127.0.0.1:0", "dungeon", heartbeat_ms=20) as publisher:
        result: list[int] = []
        thread = threading.Thread(
            target=lambda: result.append(
                run_listen(publisher.last_endpoint, json_lines, out, stop, err=err, on_connected=connected.set)
            )
        )
        thread.start()
        assert connected.wait(WAIT_S)
        deadline = time.monotonic() + WAIT_S
        while "hello" not in out.getvalue():
            assert time.monotonic() < deadline, "no heartbeat printed"
            time.sleep(0.01)
        publisher.build_started(1)
        publisher.assets_changed(1, [make_asset(1), make_asset(2, change="added")])
        publisher.build_finished(1, ok=True, duration_ms=12, changed=2)
        while "build-finished" not in out.getvalue():
            assert time.monotonic() < deadline, "build-finished not printed"
            time.sleep(0.01)
        stop.set()
        thread.join(WAIT_S)
    assert result == [0]
    assert "listening on tcp://127.0.0.1:" in err.getvalue()
    lines = out.getvalue().splitlines()
    if json_lines:
        records = [json.loads(line) for line in lines]
        assert records[0]["event"] == "rescan" and records[0]["reason"] == "first"
        messages = [r["message"] for r in records if r["event"] == "message"]
        assert {r["event"] for r in records} <= {"message", "rescan"}
        changed = next(m for m in messages if m["type"] == "assets-changed")
        assert [a["engine_path"] for a in changed["assets"]] == [
            "res://sprites/mob_00001.tres",
            "res://sprites/mob_00002.tres",
        ]
    else:
        assert lines[0].startswith("~ rescan needed: first message")
        assert any(
            "assets-changed build 1: 2 assets, 1 added, 1 modified (godot:res://sprites/mob_00001.tres" in line
            for line in lines
        )
        assert any(line.endswith("build-finished build 1: ok in 12 ms, 2 assets changed") for line in lines)


def test_run_listen_rejects_an_unusable_endpoint():
    err = io.StringIO()
    assert run_listen("tcp://*:5557", False, io.StringIO(), threading.Event(), err=err) == 2
    assert "cannot subscribe to 'tcp://*:5557'" in err.getvalue()
