"""ZeroMQ PUB side of the hot-reload protocol (``docs/protocol.md``).

One :class:`Publisher` per ``watch`` process. It binds a PUB socket, announces itself
with ``hello`` at once and then every ``heartbeat_ms`` from a background thread, and
sends the build events the build engine reports.

Invariants:

* ``seq`` starts at 1 and grows by exactly one per message actually sent, heartbeats
  included: assigning the number, encoding and sending happen under one lock, so the
  heartbeat thread and the caller's thread never interleave or reorder numbers (ZeroMQ
  sockets are not thread-safe; the lock is also what makes sharing this one safe). A
  message that fails to encode raises and uses no number.
* Every message sent passes the decoder's own checks (``protocol.encode`` validates),
  and none is larger than half the size bound: a big change set is split into several
  ``assets-changed`` messages for the same build.
* The socket binds loopback only unless ``allow_remote`` is set: build events carry the
  project name, file names and error messages, and the protocol has no authentication.
* The send high-water mark is 100,000 messages, so a burst is queued, not dropped
  (libzmq's default of 1,000 silently drops on PUB).
* Inbound traffic is bounded: a PUB socket only ever receives subscriptions (a flag
  byte and a topic), so ``ZMQ_MAXMSGSIZE`` is :data:`MAX_INBOUND_BYTES` and a peer that
  sends a bigger frame is disconnected by libzmq before it is buffered.
* Counting (for ``--metrics-port``): messages sent by type always; connected peers only
  after :meth:`Publisher.track_subscribers`, which starts a socket monitor (accepted
  connections minus disconnected ones) read by a thread of its own.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import msgpack
import zmq

from sparky_assets.hotreload.protocol import (
    DEFAULT_ENDPOINT,
    HEARTBEAT_MS,
    MAX_MESSAGE_BYTES,
    Asset,
    AssetsChanged,
    BuildError,
    BuildFailed,
    BuildFinished,
    BuildStarted,
    Hello,
    Message,
    encode,
)

SEND_HWM = 100_000
MAX_INBOUND_BYTES = 1024
"""Largest frame a peer may send the PUB socket (subscriptions are a topic prefix)."""
LINGER_MS = 250
# An assets-changed message is split before it reaches this size; half the bound leaves
# room for subscribers configured with a smaller bound and for the common fields.
SPLIT_BYTES = MAX_MESSAGE_BYTES // 2

_LOCAL_SCHEMES = ("ipc://", "inproc://")


def endpoint_host(endpoint: str) -> str | None:
    """The host part of a ``tcp://HOST:PORT`` endpoint (brackets removed), else None."""
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://") :]
    host, sep, _port = rest.rpartition(":")
    if not sep:
        return None
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host


def is_loopback_endpoint(endpoint: str) -> bool:
    """True for ``ipc://``, ``inproc://`` and ``tcp://`` on 127.0.0.0/8, ``::1`` or ``localhost``."""
    if endpoint.startswith(_LOCAL_SCHEMES):
        return True
    host = endpoint_host(endpoint)
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # '*', an interface name such as 'eth0', or a DNS name


def check_endpoint_syntax(endpoint: str) -> None:
    """Raise ValueError unless ``endpoint`` is ``tcp://HOST:PORT`` (PORT 0..65535 or
    ``*``), ``ipc://PATH`` or ``inproc://NAME``. libzmq itself takes port 99999 as
    99999 mod 65536 and binds a port nobody asked for."""
    if endpoint.startswith(_LOCAL_SCHEMES):
        if len(endpoint.split("://", 1)[1]) == 0 or "\x00" in endpoint:
            raise ValueError(f"hot-reload endpoint {endpoint!r} names no path")
        return
    if not endpoint.startswith("tcp://"):
        return  # another transport: refused (or allowed) by check_bind_endpoint
    host = endpoint_host(endpoint)
    port = endpoint.rpartition(":")[2]
    if host is None or not host or not (port == "*" or (port.isdigit() and int(port) <= 65535)):
        raise ValueError(
            f"hot-reload endpoint {endpoint!r} is not tcp://HOST:PORT with a port in 0..65535 "
            "(or ipc://PATH, inproc://NAME)"
        )


def check_bind_endpoint(endpoint: str, allow_remote: bool) -> None:
    """Raise ValueError when ``endpoint`` is malformed, or when binding it would expose
    build events unasked."""
    check_endpoint_syntax(endpoint)
    if is_loopback_endpoint(endpoint):
        return
    if not endpoint.startswith("tcp://"):
        if allow_remote:
            return
        raise ValueError(
            f"refusing to bind hot-reload endpoint {endpoint!r}: expected tcp://127.0.0.1:PORT, "
            "tcp://localhost:PORT, tcp://[::1]:PORT or ipc://PATH (pass --allow-remote / "
            "allow_remote=True for other transports)"
        )
    if allow_remote:
        return
    host = endpoint_host(endpoint)
    what = "every interface" if host in ("*", "0.0.0.0", "::") else f"{host!r}, which is not a loopback address"
    raise ValueError(
        f"refusing to bind hot-reload endpoint {endpoint!r}: it listens on {what}, so anyone who "
        "can reach this machine could subscribe and read build events (project name, file names, "
        "error messages) — the protocol has no authentication. Use tcp://127.0.0.1:PORT "
        f"(the default is {DEFAULT_ENDPOINT}), or pass --allow-remote (allow_remote=True) "
        "if you mean to expose them."
    )


class Publisher:
    """Binds a PUB socket and sends protocol v1 messages with consecutive ``seq``.

    ``endpoint`` may use port ``0`` or ``*`` to let the OS pick one; ``last_endpoint``
    says which. ``context`` is borrowed (never terminated) when given; otherwise the
    publisher owns one. ``clock`` (seconds, monotonic) schedules heartbeats.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        project: str = "",
        *,
        allow_remote: bool = False,
        context: zmq.Context | None = None,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_ms: int = HEARTBEAT_MS,
        session: str | None = None,
    ) -> None:
        check_bind_endpoint(endpoint, allow_remote)
        if isinstance(heartbeat_ms, bool) or not isinstance(heartbeat_ms, int) or heartbeat_ms <= 0:
            raise ValueError(f"heartbeat_ms must be a positive int (milliseconds), got {heartbeat_ms!r}")
        self.endpoint = endpoint
        self.project = project
        self.heartbeat_ms = heartbeat_ms
        self.session = session if session is not None else secrets.token_hex(16)
        self._clock = clock
        self._owns_context = context is None
        self._context = context if context is not None else zmq.Context()
        self._lock = threading.Lock()
        self._seq = 0
        self._last_build = 0
        self._closed = False
        self._stop = threading.Event()
        self._sent: dict[str, int] = {}
        self._peers: set[int] = set()
        self._monitor: zmq.Socket | None = None
        self._monitor_thread: threading.Thread | None = None
        self._socket = self._context.socket(zmq.PUB)
        try:
            self._socket.setsockopt(zmq.SNDHWM, SEND_HWM)
            self._socket.setsockopt(zmq.MAXMSGSIZE, MAX_INBOUND_BYTES)
            self._socket.setsockopt(zmq.LINGER, LINGER_MS)
            if "[" in endpoint:
                self._socket.setsockopt(zmq.IPV6, 1)
            self._socket.bind(endpoint)
        except zmq.ZMQError as error:
            self._socket.close(0)
            if self._owns_context:
                self._context.term()
            raise OSError(f"could not bind hot-reload endpoint {endpoint!r}: {error}") from error
        self.last_endpoint: str = self._socket.getsockopt_string(zmq.LAST_ENDPOINT)
        self.hello()
        self._heartbeat = threading.Thread(target=self._beat, name="sparky-hotreload-heartbeat", daemon=True)
        self._heartbeat.start()

    # ------------------------------------------------------------------ state

    @property
    def seq(self) -> int:
        """``seq`` of the last message sent (0 before any)."""
        return self._seq

    @property
    def send_hwm(self) -> int:
        """The socket's send high-water mark (messages queued before PUB drops)."""
        with self._lock:
            return self._socket.getsockopt(zmq.SNDHWM)

    def sent_counts(self) -> dict[str, int]:
        """Messages sent so far, by type (``hello``, ``build-started``, ...)."""
        with self._lock:
            return dict(self._sent)

    @property
    def subscribers(self) -> int:
        """Peers connected now (0 unless :meth:`track_subscribers` was called). A peer is
        a TCP/IPC connection: a bridge, ``listen``, or anything else that connected."""
        return len(self._peers)

    def track_subscribers(self) -> None:
        """Start counting connected peers with a socket monitor. Idempotent."""
        with self._lock:
            if self._closed or self._monitor is not None:
                return
            self._monitor = self._socket.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED)
        self._monitor_thread = threading.Thread(target=self._count_peers, name="sparky-hotreload-peers", daemon=True)
        self._monitor_thread.start()

    def _count_peers(self) -> None:
        from zmq.utils.monitor import recv_monitor_message

        monitor = self._monitor
        poller = zmq.Poller()
        poller.register(monitor, zmq.POLLIN)
        while not self._stop.is_set():
            if not poller.poll(100):
                continue
            event = recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._peers.add(event["value"])  # the connection's file descriptor
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._peers.discard(event["value"])

    @property
    def last_build(self) -> int:
        return self._last_build

    @property
    def closed(self) -> bool:
        return self._closed

    # ------------------------------------------------------------------ sending

    def _send(self, make: Callable[[int], Message], on_sent: Callable[[], None] | None = None) -> Message:
        with self._lock:
            if self._closed:
                raise RuntimeError(f"hot-reload publisher on {self.last_endpoint} is closed")
            seq = self._seq + 1
            message = make(seq)
            topic, body = encode(message)
            self._socket.send_multipart((topic, body), copy=False)
            self._seq = seq
            self._sent[message.TYPE] = self._sent.get(message.TYPE, 0) + 1
            if on_sent is not None:
                on_sent()
            return message

    def _common(self, seq: int) -> dict:
        return {"session": self.session, "seq": seq, "project": self.project}

    def hello(self) -> Hello:
        """Send a ``hello`` now (the heartbeat thread calls this every interval)."""
        return self._send(lambda seq: Hello(**self._common(seq), interval_ms=self.heartbeat_ms, build=self._last_build))

    def build_started(self, build: int, trigger: Sequence[str] = ()) -> BuildStarted:
        def remember_build() -> None:
            # Under the send lock, so a heartbeat never reports an older build after this.
            self._last_build = max(self._last_build, build)

        return self._send(
            lambda seq: BuildStarted(**self._common(seq), build=build, trigger=tuple(trigger)), remember_build
        )

    def assets_changed(self, build: int, assets: Iterable[Asset]) -> list[AssetsChanged]:
        """Send the build's changed assets: nothing when empty, several messages when large."""
        sent: list[AssetsChanged] = []
        for chunk in _chunks_under(list(assets), SPLIT_BYTES):
            sent.append(self._send(lambda seq: AssetsChanged(**self._common(seq), build=build, assets=chunk)))
        return sent

    def build_failed(self, build: int, errors: Iterable[BuildError]) -> BuildFailed:
        return self._send(lambda seq: BuildFailed(**self._common(seq), build=build, errors=tuple(errors)))

    def build_finished(self, build: int, ok: bool, duration_ms: int, changed: int) -> BuildFinished:
        return self._send(
            lambda seq: BuildFinished(**self._common(seq), build=build, ok=ok, duration_ms=duration_ms, changed=changed)
        )

    # ------------------------------------------------------------------ heartbeat

    def _beat(self) -> None:
        interval = self.heartbeat_ms / 1000.0
        next_at = self._clock() + interval
        while True:
            if self._stop.wait(max(0.0, next_at - self._clock())):
                return
            try:
                self.hello()
            except RuntimeError:
                return  # closed between the wait and the send
            next_at += interval
            now = self._clock()
            if next_at <= now:  # the process stalled: skip missed beats instead of bursting
                next_at = now + interval

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        """Stop the heartbeat, flush for up to LINGER_MS, release the socket. Idempotent."""
        self._stop.set()
        if self._heartbeat.is_alive() and threading.current_thread() is not self._heartbeat:
            self._heartbeat.join()
        if self._monitor_thread is not None:
            self._monitor_thread.join()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._monitor is not None:
                self._socket.disable_monitor()
                self._monitor.close(0)
            self._socket.close(LINGER_MS)
        if self._owns_context:
            self._context.term()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"seq {self._seq}"
        return f"Publisher({self.last_endpoint!r}, project={self.project!r}, session={self.session[:8]}…, {state})"


def _chunks_under(assets: list[Asset], limit: int) -> list[tuple[Asset, ...]]:
    """Consecutive groups of ``assets`` whose packed maps add up to less than ``limit``."""
    chunks: list[tuple[Asset, ...]] = []
    current: list[Asset] = []
    size = 0
    for asset in assets:
        asset_size = len(msgpack.packb(asset.to_map(), use_bin_type=True))
        if current and size + asset_size > limit:
            chunks.append(tuple(current))
            current, size = [], 0
        current.append(asset)
        size += asset_size
    if current:
        chunks.append(tuple(current))
    return chunks


__all__ = [
    "DEFAULT_ENDPOINT",
    "LINGER_MS",
    "MAX_INBOUND_BYTES",
    "SEND_HWM",
    "SPLIT_BYTES",
    "Publisher",
    "check_bind_endpoint",
    "check_endpoint_syntax",
    "endpoint_host",
    "is_loopback_endpoint",
]
