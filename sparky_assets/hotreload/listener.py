"""Reference subscriber of the hot-reload protocol, and ``sparky-assets listen``.

:func:`listen` is the subscriber loop the engine bridges mirror: SUB socket on the
``sparky.`` prefix, every message through the strict decoder, refused messages
reported and dropped, and a :class:`SessionTracker` that says when a bridge must
rescan everything instead of trusting single ``assets-changed`` messages (first
message, new session, or a ``seq`` that is not last + 1). :func:`run_listen` prints
what arrives, as readable one-liners or JSON lines, until stopped.

Invariants:

* A refused message never stops the loop and never updates the tracker, so the next
  valid message after it reports a rescan (spec: *Subscriber rules*).
* A message of an unknown type is not reported as an error; it updates the tracker.
* The loop polls with a timeout, so setting ``stop_event`` ends it within ``poll_ms``;
  the socket is closed with linger 0 on the way out.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import zmq

from sparky_assets.hotreload.protocol import (
    DEFAULT_ENDPOINT,
    MAX_MESSAGE_BYTES,
    TOPIC_PREFIX,
    AssetsChanged,
    BuildFailed,
    BuildFinished,
    BuildStarted,
    Envelope,
    Hello,
    Message,
    ProtocolError,
    decode_envelope,
)

RECEIVE_HWM = 100_000
POLL_MS = 100
SILENCE_INTERVALS = 3
PREVIEW_ITEMS = 3


@dataclass(frozen=True)
class Rescan:
    """Why a subscriber must reload everything it manages before trusting this message.

    ``reason`` is ``first`` (first message since the subscriber started),
    ``new-session`` (the publisher restarted) or ``gap`` (a ``seq`` other than
    last + 1 in the same session: messages were lost, duplicated or reordered).
    """

    reason: str
    session: str
    seq: int
    previous_session: str | None = None
    expected_seq: int | None = None

    def describe(self) -> str:
        if self.reason == "first":
            return f"first message (session {self.session[:8]}…, #{self.seq})"
        if self.reason == "new-session":
            return f"new session {self.session[:8]}… (publisher restarted; was {(self.previous_session or '')[:8]}…)"
        assert self.expected_seq is not None
        if self.seq > self.expected_seq:
            missed = self.seq - self.expected_seq
            return f"gap: expected #{self.expected_seq}, got #{self.seq} ({missed} message{'s' * (missed != 1)} lost)"
        return f"gap: expected #{self.expected_seq}, got #{self.seq} (duplicate or out of order)"


class SessionTracker:
    """Remembers the last ``session``/``seq`` and decides when a rescan is needed."""

    def __init__(self) -> None:
        self.session: str | None = None
        self.seq: int | None = None

    def observe(self, session: str, seq: int) -> Rescan | None:
        previous_session, previous_seq = self.session, self.seq
        self.session, self.seq = session, seq
        if previous_session is None:
            return Rescan("first", session, seq)
        if session != previous_session:
            return Rescan("new-session", session, seq, previous_session=previous_session)
        assert previous_seq is not None
        if seq != previous_seq + 1:
            return Rescan("gap", session, seq, expected_seq=previous_seq + 1)
        return None


MessageHandler = Callable[[Envelope, "Rescan | None"], None]
ErrorHandler = Callable[[ProtocolError, bytes], None]
SilenceHandler = Callable[[float], None]


def listen(
    endpoint: str = DEFAULT_ENDPOINT,
    *,
    on_message: MessageHandler,
    on_error: ErrorHandler | None = None,
    stop_event: threading.Event | None = None,
    max_bytes: int = MAX_MESSAGE_BYTES,
    context: zmq.Context | None = None,
    topics: Sequence[str] = (TOPIC_PREFIX,),
    poll_ms: int = POLL_MS,
    on_silence: SilenceHandler | None = None,
    on_connected: Callable[[], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Subscribe to ``endpoint`` and feed every message to the handlers until stopped.

    ``on_message(envelope, rescan)`` gets each valid message (``envelope.message`` is
    None for an ignored unknown type) and the :class:`Rescan` it triggers, if any.
    ``on_error(error, topic)`` gets each refused one. ``on_silence(seconds)`` is called
    once when nothing arrived for 3 heartbeat intervals (ZeroMQ reconnects by itself;
    this is only a notice). ``on_connected()`` is called once the socket is connected
    (tests use it to start publishing). Returns when ``stop_event`` is set.
    """
    stop_event = stop_event or threading.Event()
    owns_context = context is None
    context = context if context is not None else zmq.Context()
    socket = context.socket(zmq.SUB)
    try:
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, RECEIVE_HWM)
        # frames a little over the bound still arrive (and are reported as oversize);
        # a peer sending a huge one is disconnected by libzmq before it is buffered
        socket.setsockopt(zmq.MAXMSGSIZE, max(4 * max_bytes, 64 * 1024))
        if "[" in endpoint:
            socket.setsockopt(zmq.IPV6, 1)
        for topic in topics:
            socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
        socket.connect(endpoint)
        if on_connected is not None:
            on_connected()
        tracker = SessionTracker()
        poller = zmq.Poller()
        poller.register(socket, zmq.POLLIN)
        last_heard = clock()
        silence_after: float | None = None  # seconds; known once a hello told the interval
        silent = False
        while not stop_event.is_set():
            if not poller.poll(poll_ms):
                quiet_for = clock() - last_heard
                if silence_after is not None and not silent and quiet_for >= silence_after:
                    silent = True
                    if on_silence is not None:
                        on_silence(quiet_for)
                continue
            while not stop_event.is_set():
                try:
                    frames = socket.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                last_heard = clock()
                silent = False
                envelope = _receive(frames, tracker, max_bytes, on_message, on_error)
                if envelope is not None and isinstance(envelope.message, Hello):
                    silence_after = SILENCE_INTERVALS * envelope.message.interval_ms / 1000.0
    finally:
        socket.close(0)
        if owns_context:
            context.term()


def _receive(
    frames: list[bytes],
    tracker: SessionTracker,
    max_bytes: int,
    on_message: MessageHandler,
    on_error: ErrorHandler | None,
) -> Envelope | None:
    topic = frames[0] if frames else b""
    try:
        if len(frames) != 2:
            raise ProtocolError("malformed", f"expected 2 frames (topic, body), got {len(frames)}")
        envelope = decode_envelope(topic, frames[1], max_bytes)
    except ProtocolError as error:
        if on_error is not None:
            on_error(error, topic)
        return None
    on_message(envelope, tracker.observe(envelope.session, envelope.seq))
    return envelope


# --------------------------------------------------------------------------- formatting


def _preview(items: Sequence[str]) -> str:
    shown = ", ".join(items[:PREVIEW_ITEMS])
    if len(items) > PREVIEW_ITEMS:
        shown += f", … +{len(items) - PREVIEW_ITEMS} more"
    return shown


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_message(message: Message) -> str:
    """One readable line, e.g. ``#12 assets-changed build 3: 4 assets (godot:res://…)``."""
    head = f"#{message.seq} {message.TYPE}"
    if isinstance(message, Hello):
        return (
            f"{head} {message.project!r}: session {message.session[:8]}…, "
            f"heartbeat {message.interval_ms} ms, last build {message.build}"
        )
    if isinstance(message, BuildStarted):
        if not message.trigger:
            return f"{head} build {message.build}: initial build"
        return f"{head} build {message.build}: {_plural(len(message.trigger), 'changed file')} ({_preview(message.trigger)})"
    if isinstance(message, AssetsChanged):
        counts = {change: 0 for change in ("added", "modified", "removed")}
        for asset in message.assets:
            counts[asset.change] = counts.get(asset.change, 0) + 1
        breakdown = ", ".join(f"{count} {change}" for change, count in counts.items() if count)
        names = [f"{asset.target}:{asset.engine_path or asset.path}" for asset in message.assets]
        return f"{head} build {message.build}: {_plural(len(message.assets), 'asset')}, {breakdown} ({_preview(names)})"
    if isinstance(message, BuildFailed):
        lines = []
        for error in message.errors:
            where = error.file or ""
            if error.file and error.line is not None:
                where += f":{error.line}"
                if error.column is not None:
                    where += f":{error.column}"
            text = f"{where}: {error.message}" if where else error.message
            if error.sprite:
                text += f" [sprite {error.sprite}]"
            if error.stage:
                text += f" [{error.stage}]"
            lines.append(text)
        first = lines[0] if lines else "no details"
        more = f" (+{len(lines) - 1} more)" if len(lines) > 1 else ""
        return f"{head} build {message.build}: {_plural(len(message.errors), 'error')}: {first}{more}"
    if isinstance(message, BuildFinished):
        if not message.ok:
            return f"{head} build {message.build}: FAILED after {message.duration_ms} ms"
        return (
            f"{head} build {message.build}: ok in {message.duration_ms} ms, {_plural(message.changed, 'asset')} changed"
        )
    raise TypeError(f"not a protocol message: {message!r}")


def format_envelope(envelope: Envelope) -> str:
    if envelope.message is None:
        return f"#{envelope.seq} {envelope.type} (unknown type, ignored)"
    return format_message(envelope.message)


def format_rescan(rescan: Rescan) -> str:
    return f"~ rescan needed: {rescan.describe()}"


def format_error(error: ProtocolError, topic: bytes) -> str:
    return f"! refused {topic.decode('utf-8', 'replace')!r} ({error.code}): {error.detail}"


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$bin": value.hex()}
    return repr(value)


def _finite(value: Any) -> Any:
    """``value`` with non-finite floats (a peer may send NaN or infinity in extra keys)
    as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def json_line(record: dict[str, Any]) -> str:
    """One strict JSON line (never ``NaN``: see :func:`_finite`)."""
    return json.dumps(
        _finite(record), ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
    )


def message_record(envelope: Envelope) -> dict[str, Any]:
    return {
        "event": "message",
        "topic": TOPIC_PREFIX + envelope.type,
        "ignored": envelope.ignored,
        "message": envelope.raw,
    }


def rescan_record(rescan: Rescan) -> dict[str, Any]:
    return {
        "event": "rescan",
        "reason": rescan.reason,
        "session": rescan.session,
        "seq": rescan.seq,
        "previous_session": rescan.previous_session,
        "expected_seq": rescan.expected_seq,
    }


def error_record(error: ProtocolError, topic: bytes) -> dict[str, Any]:
    return {"event": "error", "topic": topic.decode("utf-8", "replace"), "error": error.code, "detail": error.detail}


def run_listen(
    endpoint: str = DEFAULT_ENDPOINT,
    json_lines: bool = False,
    out: TextIO = sys.stdout,
    stop_event: threading.Event | None = None,
    *,
    err: TextIO = sys.stderr,
    max_bytes: int = MAX_MESSAGE_BYTES,
    context: zmq.Context | None = None,
    on_connected: Callable[[], None] | None = None,
) -> int:
    """Print every message from ``endpoint`` until ``stop_event`` or Ctrl-C; exit code.

    Text mode prints one line per message, rescan and refusal; ``json_lines`` prints
    one JSON object per line with ``event`` = ``message`` | ``rescan`` | ``error`` |
    ``silence``. Status lines go to ``err``, so ``out`` holds only events.
    Returns 0 when stopped, 2 when the endpoint cannot be used.
    """

    def emit(text_line: str, record: dict[str, Any]) -> None:
        out.write((json_line(record) if json_lines else text_line) + "\n")
        out.flush()

    def on_message(envelope: Envelope, rescan: Rescan | None) -> None:
        if rescan is not None:
            emit(format_rescan(rescan), rescan_record(rescan))
        emit(format_envelope(envelope), message_record(envelope))

    def on_error(error: ProtocolError, topic: bytes) -> None:
        emit(format_error(error, topic), error_record(error, topic))

    def on_silence(seconds: float) -> None:
        emit(
            f"~ nothing heard for {seconds:.1f} s (publisher stopped? reconnecting by itself)",
            {"event": "silence", "seconds": round(seconds, 3)},
        )

    err.write(f"listening on {endpoint} (Ctrl-C to stop)\n")
    err.flush()
    try:
        listen(
            endpoint,
            on_message=on_message,
            on_error=on_error,
            on_silence=on_silence,
            stop_event=stop_event,
            max_bytes=max_bytes,
            context=context,
            on_connected=on_connected,
        )
    except zmq.ZMQError as error:
        err.write(f"error: cannot subscribe to {endpoint!r}: {error} (expected e.g. {DEFAULT_ENDPOINT})\n")
        err.flush()
        return 2
    except KeyboardInterrupt:
        pass
    return 0


__all__ = [
    "Rescan",
    "SessionTracker",
    "error_record",
    "format_envelope",
    "format_error",
    "format_message",
    "format_rescan",
    "json_line",
    "listen",
    "message_record",
    "rescan_record",
    "run_listen",
]
