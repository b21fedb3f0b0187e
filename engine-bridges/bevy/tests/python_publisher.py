"""Drive the real Python hot-reload Publisher from a Rust test (tests/python_publisher.rs).

Usage: python tests/python_publisher.py ENDPOINT
Prints "<last_endpoint> <session>" once bound, then executes one command per stdin line:
  changed ENGINE_PATH...   one assets-changed (build N) with a bevy asset per path
  failed                   one build-failed with two errors
  quit                     close the publisher and exit
Each command is answered with "ok <seq>" after it was sent.
"""

from __future__ import annotations

import hashlib
import sys

from sparky_assets.hotreload.protocol import Asset, BuildError
from sparky_assets.hotreload.publisher import Publisher


def main() -> int:
    publisher = Publisher(sys.argv[1], "dungeon", heartbeat_ms=50)
    print(publisher.last_endpoint, publisher.session, flush=True)
    build = 0
    try:
        for line in sys.stdin:
            command, *args = line.split()
            build += 1
            if command == "changed":
                publisher.build_started(build, ["sparky.toml"])
                publisher.assets_changed(
                    build,
                    [
                        Asset(
                            target="bevy",
                            path=path.split("/", 1)[-1],
                            engine_path=path,
                            kind="atlas" if path.endswith(".atlas.ron") else "texture",
                            change="modified",
                            hash=hashlib.sha256(path.encode()).hexdigest(),
                            sprites=("hero",),
                            atlas="characters",
                        )
                        for path in args
                    ],
                )
                publisher.build_finished(build, True, 12, len(args))
            elif command == "failed":
                publisher.build_started(build, ["sparky.toml"])
                publisher.build_failed(
                    build,
                    [
                        BuildError(message="unknown palette 'endesga32'", file="sparky.toml", line=9, column=11, stage="manifest"),
                        BuildError(message="frame count must be positive", sprite="hero", stage="manifest"),
                    ],
                )
                publisher.build_finished(build, False, 3, 0)
            elif command == "quit":
                break
            else:
                raise SystemExit(f"unknown command {command!r}")
            print("ok", publisher.seq, flush=True)
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
