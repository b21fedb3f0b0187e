"""Hot-reload wire protocol, version 1: message types, encoder and strict decoder.

The normative description is ``docs/protocol.md``; the JSON Schema of a decoded body is
``docs/protocol.schema.json``; ``tests/vectors/`` holds the bodies every decoder (this
one, the Bevy bridge, the Godot bridge) must agree on.

Invariants:

* ``encode`` is deterministic: the same message gives the same two frames, byte for
  byte (fixed key order, smallest msgpack encodings), and it refuses a message that
  ``decode`` would refuse, so ``decode(*encode(m)) == m`` for every message it accepts.
* ``decode`` never parses a body larger than its bound, never recurses in Python
  (the C unpacker has a fixed stack; the depth check below is iterative), and reports
  every refusal as one :class:`ProtocolError` whose ``code`` is a name from the spec's
  error table. When a body has several faults, the first in the spec's check order
  wins, so every decoder reports the same code.
* ``validate_engine_path`` is the single implementation of the *Paths* rules; the
  publisher, the decoder and the exporters that build ``engine_path`` values share it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

import msgpack

PROTOCOL_VERSION = 1
DEFAULT_ENDPOINT = "tcp://127.0.0.1:5557"
MAX_MESSAGE_BYTES = 1 << 20
HEARTBEAT_MS = 2000
TOPIC_PREFIX = "sparky."
MAX_DEPTH = 32
MAX_INT = (1 << 53) - 1

ERROR_CODES = (
    "oversize",
    "malformed",
    "not-a-map",
    "missing-field",
    "wrong-type",
    "version",
    "path",
    "topic",
)

STAGES = ("manifest", "palette", "generate", "process", "pack", "export", "write")
GODOT_PREFIX = "res://"


class ProtocolError(ValueError):
    """A body or topic that breaks protocol v1; ``code`` names the rule (spec table)."""

    def __init__(self, code: str, detail: str) -> None:
        if code not in ERROR_CODES:
            raise ValueError(f"unknown protocol error code {code!r}; expected one of {ERROR_CODES}")
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


# --------------------------------------------------------------------------- paths

_FORBIDDEN_PATH_CHARS = ("\\", "\x00", ":")


def path_problem(path: str) -> str | None:
    """Why ``path`` is not a normalized relative ``/``-separated path, or None if it is."""
    if path == "":
        return "is empty"
    if path.startswith("/"):
        return "is absolute (starts with '/')"
    for char, name in (("\\", "a backslash"), ("\x00", "a NUL byte"), (":", "a ':' (drive letter or URL)")):
        if char in path:
            return f"contains {name}"
    for component in path.split("/"):
        if component == "..":
            return "has a '..' component"
        if component == ".":
            return "has a '.' component"
        if component == "":
            return "has an empty component ('//' or a trailing '/')"
    return None


def validate_engine_path(target: str, path: str, engine_path: str | None) -> None:
    """Apply the spec's *Paths* rules to one asset; raise ``ProtocolError('path')``.

    ``path`` must be a normalized relative path. ``engine_path`` may be nil; for the
    ``godot`` target it must start with ``res://`` and the rest must be a normalized
    relative path; for any other target the whole value must be one.
    """
    problem = path_problem(path)
    if problem is not None:
        raise ProtocolError("path", f"asset path {path!r} {problem}")
    if engine_path is None:
        return
    rest = engine_path
    if target == "godot":
        if not engine_path.startswith(GODOT_PREFIX):
            raise ProtocolError("path", f"godot engine_path {engine_path!r} does not start with {GODOT_PREFIX!r}")
        rest = engine_path[len(GODOT_PREFIX) :]
    problem = path_problem(rest)
    if problem is not None:
        raise ProtocolError("path", f"{target} engine_path {engine_path!r} {problem}")


# --------------------------------------------------------------------------- messages


def _as_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes)):
        raise TypeError(f"expected a sequence, got {type(value).__name__} {value!r}")
    return tuple(value)


@dataclass(frozen=True, kw_only=True)
class Asset:
    """One output file that was added, modified or removed (``assets-changed``)."""

    target: str
    path: str
    engine_path: str | None
    kind: str
    change: str
    hash: str
    sprites: tuple[str, ...] = ()
    atlas: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "sprites", _as_tuple(self.sprites))

    def to_map(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "path": self.path,
            "engine_path": self.engine_path,
            "kind": self.kind,
            "change": self.change,
            "hash": self.hash,
            "sprites": list(self.sprites),
            "atlas": self.atlas,
        }


@dataclass(frozen=True, kw_only=True)
class BuildError:
    """One problem of a failed build (``build-failed``)."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    sprite: str | None = None
    stage: str | None = None

    def to_map(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "sprite": self.sprite,
            "stage": self.stage,
            "message": self.message,
        }


@dataclass(frozen=True, kw_only=True)
class _Common:
    """Fields on every message; ``v`` and ``type`` are implied by the class."""

    TYPE: ClassVar[str] = ""

    session: str
    seq: int
    project: str

    @property
    def topic(self) -> str:
        return TOPIC_PREFIX + self.TYPE

    def _common_map(self) -> dict[str, Any]:
        return {
            "v": PROTOCOL_VERSION,
            "type": self.TYPE,
            "seq": self.seq,
            "session": self.session,
            "project": self.project,
        }

    def to_map(self) -> dict[str, Any]:  # pragma: no cover - every subclass overrides
        raise NotImplementedError


@dataclass(frozen=True, kw_only=True)
class Hello(_Common):
    """Start-up announcement and heartbeat."""

    TYPE: ClassVar[str] = "hello"

    interval_ms: int
    build: int

    def to_map(self) -> dict[str, Any]:
        return {**self._common_map(), "interval_ms": self.interval_ms, "build": self.build}


@dataclass(frozen=True, kw_only=True)
class BuildStarted(_Common):
    TYPE: ClassVar[str] = "build-started"

    build: int
    trigger: tuple[str, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "trigger", _as_tuple(self.trigger))

    def to_map(self) -> dict[str, Any]:
        return {**self._common_map(), "build": self.build, "trigger": list(self.trigger)}


@dataclass(frozen=True, kw_only=True)
class AssetsChanged(_Common):
    TYPE: ClassVar[str] = "assets-changed"

    build: int
    assets: tuple[Asset, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "assets", _as_tuple(self.assets))

    def to_map(self) -> dict[str, Any]:
        return {
            **self._common_map(),
            "build": self.build,
            "assets": [asset.to_map() for asset in self.assets],
        }


@dataclass(frozen=True, kw_only=True)
class BuildFailed(_Common):
    TYPE: ClassVar[str] = "build-failed"

    build: int
    errors: tuple[BuildError, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "errors", _as_tuple(self.errors))

    def to_map(self) -> dict[str, Any]:
        return {
            **self._common_map(),
            "build": self.build,
            "errors": [error.to_map() for error in self.errors],
        }


@dataclass(frozen=True, kw_only=True)
class BuildFinished(_Common):
    TYPE: ClassVar[str] = "build-finished"

    build: int
    ok: bool
    duration_ms: int
    changed: int

    def to_map(self) -> dict[str, Any]:
        return {
            **self._common_map(),
            "build": self.build,
            "ok": self.ok,
            "duration_ms": self.duration_ms,
            "changed": self.changed,
        }


Message = Union[Hello, BuildStarted, AssetsChanged, BuildFailed, BuildFinished]
MESSAGE_TYPES: dict[str, type] = {
    cls.TYPE: cls for cls in (Hello, BuildStarted, AssetsChanged, BuildFailed, BuildFinished)
}


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """A body that passed every check: its common fields, its raw map, its typed message.

    ``message`` is None for a type this decoder does not know (ignored, but it still
    counts for ``seq`` — subscribers track ``session``/``seq`` from the envelope).
    """

    type: str
    session: str
    seq: int
    project: str
    raw: dict[str, Any] = field(repr=False, compare=False)
    message: Message | None

    @property
    def ignored(self) -> bool:
        return self.message is None


# --------------------------------------------------------------------------- encode


def encode(message: Message) -> tuple[bytes, bytes]:
    """``(topic, body)`` frames for ``message``; raises ProtocolError if it is invalid."""
    body_map = message.to_map()
    body = msgpack.packb(body_map, use_bin_type=True)
    topic = message.topic.encode("ascii")
    # The same checks as the decoder, so a publisher never sends what decoders refuse.
    _validate(topic, body_map, body_map)
    if len(body) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            "oversize",
            f"{message.TYPE} body is {len(body)} bytes, over the {MAX_MESSAGE_BYTES}-byte bound",
        )
    return topic, body


# --------------------------------------------------------------------------- decode


class _NonStringKey(Exception):
    pass


class _DuplicateKey(Exception):
    pass


def _pairs_to_dict(pairs: list[tuple[Any, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise _NonStringKey(f"map key {key!r:.40} is a {_type_name(key)}, not a str")
        if key in result:
            raise _DuplicateKey(f"map key {key!r} appears twice")
        result[key] = value
    return result


def _depth(value: Any) -> int:
    """Deepest container nesting in ``value`` (a top-level map is depth 1), level by level.

    Iterative (no Python recursion on hostile input) and stops one level past the bound.
    """
    level = [value] if type(value) in (dict, list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        below: list[Any] = []
        for item in level:
            children = item.values() if type(item) is dict else item
            below.extend([child for child in children if type(child) in (dict, list)])
        level = below
    return depth


def parse_body(body: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> dict[str, Any]:
    """Checks 1–3 of the spec's order: size bound, well-formed msgpack, a map at the top."""
    if len(body) > max_bytes:
        raise ProtocolError("oversize", f"body is {len(body)} bytes, over the {max_bytes}-byte bound")
    try:
        value = msgpack.unpackb(
            body,
            raw=False,
            strict_map_key=False,  # checked in _pairs_to_dict, which also refuses bin keys
            object_pairs_hook=_pairs_to_dict,
            use_list=True,
        )
    except msgpack.ExtraData:
        raise ProtocolError("malformed", "trailing bytes after the body's msgpack value") from None
    except msgpack.StackError:
        raise ProtocolError("malformed", f"nesting deeper than {MAX_DEPTH}") from None
    except msgpack.FormatError:
        raise ProtocolError("malformed", "reserved msgpack byte (0xc1)") from None
    except UnicodeDecodeError as error:
        raise ProtocolError("malformed", f"string is not valid UTF-8 ({error.reason})") from None
    except (_NonStringKey, _DuplicateKey) as error:
        raise ProtocolError("malformed", str(error)) from None
    except ValueError as error:
        # "incomplete input", or a declared length longer than what is left ("exceeds max_…").
        detail = "truncated msgpack" if "incomplete" in str(error) or "exceeds max" in str(error) else str(error)
        raise ProtocolError("malformed", detail) from None
    if _depth(value) > MAX_DEPTH:
        raise ProtocolError("malformed", f"nesting deeper than {MAX_DEPTH}")
    if not isinstance(value, dict):
        raise ProtocolError("not-a-map", f"body is a msgpack {_type_name(value)}, not a map")
    return value


def _type_name(value: Any) -> str:
    if value is None:
        return "nil"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, bytes):
        return "bin"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "map"
    return "ext"


class _Fields:
    """Typed field access on one map; ``where`` names it in messages (``assets[2]``)."""

    def __init__(self, mapping: Mapping[str, Any], where: str) -> None:
        self.mapping = mapping
        self.where = where

    def _get(self, key: str) -> Any:
        if key not in self.mapping:
            raise ProtocolError("missing-field", f"{self.where}{key} is missing")
        return self.mapping[key]

    def _wrong(self, key: str, expected: str, value: Any) -> ProtocolError:
        return ProtocolError(
            "wrong-type", f"{self.where}{key} must be {expected}, found {_type_name(value)} {value!r:.60}"
        )

    def int(self, key: str) -> int:
        value = self._get(key)
        return self._check_int(key, value)

    def _check_int(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._wrong(key, "an int", value)
        if value < 0 or value > MAX_INT:
            raise self._wrong(key, f"an int in 0..{MAX_INT}", value)
        return value

    def opt_int(self, key: str) -> int | None:
        value = self._get(key)
        return None if value is None else self._check_int(key, value)

    def str(self, key: str) -> str:
        value = self._get(key)
        if not isinstance(value, str):
            raise self._wrong(key, "a str", value)
        return value

    def opt_str(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self._wrong(key, "a str or nil", value)
        return value

    def bool(self, key: str) -> bool:
        value = self._get(key)
        if not isinstance(value, bool):
            raise self._wrong(key, "a bool", value)
        return value

    def array(self, key: str) -> list[Any]:
        value = self._get(key)
        if not isinstance(value, list):
            raise self._wrong(key, "an array", value)
        return value

    def str_array(self, key: str) -> tuple[str, ...]:
        items = self.array(key)
        for index, item in enumerate(items):
            if not isinstance(item, str):
                raise self._wrong(f"{key}[{index}]", "a str", item)
        return tuple(items)

    def maps(self, key: str) -> list[_Fields]:
        result = []
        for index, item in enumerate(self.array(key)):
            if not isinstance(item, dict):
                raise self._wrong(f"{key}[{index}]", "a map", item)
            result.append(_Fields(item, f"{self.where}{key}[{index}]."))
        return result


def _validate(topic: bytes, body: Mapping[str, Any], raw: dict[str, Any]) -> Envelope:
    """Checks 4–9 of the spec's order on a parsed map."""
    fields = _Fields(body, "")
    # v first: a future version may change every other field.
    if "v" not in body:
        raise ProtocolError("missing-field", "v is missing")
    version = body["v"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise fields._wrong("v", "an int", version)
    if version != PROTOCOL_VERSION:
        raise ProtocolError("version", f"v is {version}; this decoder speaks version {PROTOCOL_VERSION}")
    type_ = fields.str("type")
    expected_topic = (TOPIC_PREFIX + type_).encode("utf-8")
    if topic != expected_topic:
        raise ProtocolError("topic", f"topic {topic.decode('utf-8', 'replace')!r} does not match type {type_!r}")
    seq = fields.int("seq")
    session = fields.str("session")
    project = fields.str("project")
    common = {"session": session, "seq": seq, "project": project}

    message: Message | None
    if type_ == Hello.TYPE:
        message = Hello(**common, interval_ms=fields.int("interval_ms"), build=fields.int("build"))
    elif type_ == BuildStarted.TYPE:
        message = BuildStarted(**common, build=fields.int("build"), trigger=fields.str_array("trigger"))
    elif type_ == AssetsChanged.TYPE:
        build = fields.int("build")
        assets = tuple(
            Asset(
                target=item.str("target"),
                path=item.str("path"),
                engine_path=item.opt_str("engine_path"),
                kind=item.str("kind"),
                change=item.str("change"),
                hash=item.str("hash"),
                sprites=item.str_array("sprites"),
                atlas=item.opt_str("atlas"),
            )
            for item in fields.maps("assets")
        )
        for asset in assets:
            validate_engine_path(asset.target, asset.path, asset.engine_path)
        message = AssetsChanged(**common, build=build, assets=assets)
    elif type_ == BuildFailed.TYPE:
        build = fields.int("build")
        errors = tuple(
            BuildError(
                file=item.opt_str("file"),
                line=item.opt_int("line"),
                column=item.opt_int("column"),
                sprite=item.opt_str("sprite"),
                stage=item.opt_str("stage"),
                message=item.str("message"),
            )
            for item in fields.maps("errors")
        )
        message = BuildFailed(**common, build=build, errors=errors)
    elif type_ == BuildFinished.TYPE:
        message = BuildFinished(
            **common,
            build=fields.int("build"),
            ok=fields.bool("ok"),
            duration_ms=fields.int("duration_ms"),
            changed=fields.int("changed"),
        )
    else:
        message = None
    return Envelope(type=type_, session=session, seq=seq, project=project, raw=raw, message=message)


def _topic_bytes(topic: bytes | str) -> bytes:
    return topic.encode("utf-8") if isinstance(topic, str) else bytes(topic)


def decode_envelope(topic: bytes | str, body: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Envelope:
    """Decode and check one message in the spec's check order; raise ProtocolError."""
    mapping = parse_body(bytes(body), max_bytes)
    return _validate(_topic_bytes(topic), mapping, mapping)


def decode(topic: bytes | str, body: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Message | None:
    """The typed message, or None for a valid message of an unknown (ignored) type."""
    return decode_envelope(topic, body, max_bytes).message


__all__ = [
    "DEFAULT_ENDPOINT",
    "ERROR_CODES",
    "GODOT_PREFIX",
    "HEARTBEAT_MS",
    "MAX_DEPTH",
    "MAX_INT",
    "MAX_MESSAGE_BYTES",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "STAGES",
    "TOPIC_PREFIX",
    "Asset",
    "AssetsChanged",
    "BuildError",
    "BuildFailed",
    "BuildFinished",
    "BuildStarted",
    "Envelope",
    "Hello",
    "Message",
    "ProtocolError",
    "decode",
    "decode_envelope",
    "encode",
    "parse_body",
    "path_problem",
    "validate_engine_path",
]
