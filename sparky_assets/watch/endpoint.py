"""Where ``watch`` publishes: the endpoint and remote permission, from the command line
or from the *validated* manifest, bound only after the whole manifest checks out.

A refusal (a non-loopback address without ``allow_remote``, an endpoint that cannot
be bound) is bad input located at ``sparky.toml:line:col`` when the value came from
the manifest, or at the ``--endpoint`` option when it came from the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ..errors import Diagnostic, InvalidInput
from ..hotreload.protocol import DEFAULT_ENDPOINT
from ..hotreload.publisher import Publisher
from ..manifest.load import load_manifest
from ..manifest.locate import KeyLocator


def bind_publisher(
    manifest_path: Path, endpoint: str | None, allow_remote: bool, echo: Callable[..., None]
) -> Publisher:
    manifest = load_manifest(manifest_path)  # raises InvalidInput (exit 2) with every problem
    from_manifest = endpoint is None
    endpoint = endpoint or manifest.endpoint or DEFAULT_ENDPOINT
    allow_remote = allow_remote or manifest.allow_remote

    def refused(message: str, key: str, hint: str | None) -> InvalidInput:
        if from_manifest:
            text = manifest.path.read_text(encoding="utf-8", errors="replace")
            line, col = KeyLocator(text).locate(key)
            where = {"file": str(manifest.path), "line": line, "column": col, "key": key}
        else:
            where = {"key": "--endpoint"}
        return InvalidInput(Diagnostic(message, hint=hint, stage="manifest", **where))

    if allow_remote:
        echo(
            "warning: --allow-remote: build events (project, file names, errors) are visible to anyone who can reach "
            f"{endpoint}; there is no authentication"
        )
    try:
        return Publisher(endpoint, manifest.name, allow_remote=allow_remote)
    except ValueError as exc:  # a non-loopback endpoint without allow_remote
        raise refused(
            str(exc), "hot_reload.endpoint", "pass --allow-remote (or hot_reload.allow_remote = true) to expose it"
        ) from None
    except OSError as exc:  # malformed, in use, an unknown interface
        raise refused(
            str(exc), "hot_reload.endpoint", "pick another port, or tcp://127.0.0.1:0 for any free one"
        ) from None
