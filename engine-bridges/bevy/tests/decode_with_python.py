"""Decode bodies with the reference Python decoder for tests/differential.rs.

Reads JSON lines {"topic": str, "body": hex, "max_bytes": int} on stdin and prints one
JSON line per input: {"code": "ok" | "ignored" | <error code>}.
"""

from __future__ import annotations

import json
import sys

from sparky_assets.hotreload.protocol import ProtocolError, decode_envelope


def main() -> int:
    for line in sys.stdin:
        case = json.loads(line)
        try:
            envelope = decode_envelope(case["topic"].encode(), bytes.fromhex(case["body"]), case["max_bytes"])
            code = "ignored" if envelope.ignored else "ok"
        except ProtocolError as error:
            code = error.code
        print(json.dumps({"code": code}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
