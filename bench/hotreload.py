"""Hot-reload latency benchmark (issue: watch mode + protocol v1).

A 200-sprite project runs under a real watch session (watchdog observer, debounce,
incremental build, ZeroMQ PUB on loopback). The benchmark rewrites one sprite's
palette file 30+ times, each edit to an idle watcher (built at once: the debounce only
applies to bursts during a build), and measures file write → ``assets-changed``
received by a subscriber, and the CPU time the process spent in that span (which a
loaded machine inflates much less than the wall time); in the same run it measures
the bare ZeroMQ PUB→SUB one-way latency and prints the load average. Goal: p50 under
50 ms, p95 under 100 ms.

    python bench/hotreload.py [--edits 30] [--debounce-ms 50]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import zmq

sys.path.insert(0, str(Path(__file__).parent))
from incremental import write_project  # noqa: E402

from sparky_assets.hotreload.protocol import decode  # noqa: E402
from sparky_assets.hotreload.publisher import Publisher  # noqa: E402
from sparky_assets.watch.session import FileWatcher, WatchSession  # noqa: E402


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


def bare_zmq(n: int = 2000) -> list[float]:
    ctx = zmq.Context.instance()
    pub, sub = ctx.socket(zmq.PUB), ctx.socket(zmq.SUB)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    sub.connect(f"tcp://127.0.0.1:{port}")
    sub.subscribe(b"")
    while True:  # wait for the subscription to be live
        pub.send_multipart([b"x", b"0"])
        if sub.poll(50):
            sub.recv_multipart()
            break
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        pub.send_multipart([b"sparky.x", b"%f" % t0])
        sub.recv_multipart()
        out.append((time.perf_counter() - t0) * 1000)
    pub.close(0)
    sub.close(0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--sprites", type=int, default=200)
    parser.add_argument("--debounce-ms", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_project(root, args.sprites)
        changes: queue.Queue = queue.Queue()
        watcher = FileWatcher(changes, root)
        publisher = Publisher("tcp://127.0.0.1:0", "bench", heartbeat_ms=1000)
        session = WatchSession(
            root / "sparky.toml",
            publisher,
            changes,
            debounce_s=args.debounce_ms / 1000,
            echo=lambda *a, **k: None,
            on_files=watcher.set_files,
        )
        sub = zmq.Context.instance().socket(zmq.SUB)
        sub.connect(publisher.last_endpoint)
        sub.subscribe(b"sparky.")
        thread = threading.Thread(target=session.run, daemon=True)
        t0 = time.perf_counter()
        thread.start()

        def wait_for(kind: str, timeout: float = 120.0):
            deadline = time.perf_counter() + timeout
            while time.perf_counter() < deadline:
                if sub.poll(100):
                    topic, body = sub.recv_multipart()
                    msg = decode(topic, body)
                    if msg is not None and msg.TYPE == kind:
                        return msg
            raise TimeoutError(kind)

        wait_for("build-finished")
        cold = time.perf_counter() - t0
        latencies, cpu = [], []
        for i in range(args.edits):
            colour = f"{(i * 37) % 256:02x}{(i * 91) % 256:02x}80"
            time.sleep(0.15)
            start, start_cpu = time.perf_counter(), time.process_time()
            (root / "one.hex").write_text(f"000000\n{colour}\nff0000\n00ff00\n0000ff\n")
            wait_for("assets-changed")
            latencies.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
            wait_for("build-finished")
        session.stop_event.set()
        thread.join(5)
        watcher.stop()
        publisher.close()
        sub.close(0)
    bare = bare_zmq()
    p50, p95 = pct(latencies, 50), pct(latencies, 95)
    b50, b95 = pct(bare, 50), pct(bare, 95)
    print(
        f"hot reload, {args.sprites} sprites, {args.edits} palette edits of one sprite, debounce {args.debounce_ms} ms "
        f"(initial build {cold:.1f} s)"
    )
    print(f"{'path':42s} {'p50 ms':>8s} {'p95 ms':>8s}")
    print(
        f"{'file write -> assets-changed received':42s} {p50:8.1f} {p95:8.1f}   goal p50 < 50, p95 < 100 ms: "
        f"{'ok' if p50 < 50 and p95 < 100 else 'MISSED'}"
    )
    print(f"{'  CPU time of this process in that span':42s} {pct(cpu, 50):8.1f} {pct(cpu, 95):8.1f}   (all threads)")
    print(f"{'bare ZeroMQ PUB->SUB one-way (loopback)':42s} {b50:8.3f} {b95:8.3f}")
    print(f"ratio p50 edit->message / bare ZeroMQ: {p50 / b50:.0f}x (the rest is the incremental build)")
    print("load average (1, 5, 15 min): {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
