//! Hot-reload protocol v1 decoder: strict msgpack reader + message validation.
//!
//! Pure (no Bevy, no I/O) so it can be tested against the shared vectors in
//! `tests/vectors/` and reused by any Rust subscriber. The normative description is
//! `docs/protocol.md`; the reference implementation is
//! `sparky_assets/hotreload/protocol.py`.
//!
//! Invariants:
//! * [`decode`] never reads a body larger than its bound, never panics, never recurses
//!   deeper than [`MAX_DEPTH`] containers and never allocates more elements than the
//!   body has bytes left (a length prefix cannot make it reserve gigabytes).
//! * Every refusal is one [`DecodeError`] whose [`ErrorCode`] is a name from the spec's
//!   error table. When a body has several faults the first in the reference decoder's
//!   check order wins: size → msgpack → map → `v` → `type` → topic → `seq`, `session`,
//!   `project` → the type's own fields in table order → asset paths.

use std::collections::BTreeMap;
use std::fmt;

/// Protocol version this decoder speaks.
pub const PROTOCOL_VERSION: u64 = 1;
/// Default size bound of a body (1 MiB).
pub const MAX_MESSAGE_BYTES: usize = 1 << 20;
/// Deepest container nesting accepted; a top-level map is depth 1.
pub const MAX_DEPTH: usize = 32;
/// Largest integer a v1 field may hold (2^53 - 1).
pub const MAX_INT: u64 = (1 << 53) - 1;
/// Prefix of every topic frame.
pub const TOPIC_PREFIX: &str = "sparky.";
/// Default publisher endpoint.
pub const DEFAULT_ENDPOINT: &str = "tcp://127.0.0.1:5557";

/// The spec's error table: why a message was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    Oversize,
    Malformed,
    NotAMap,
    MissingField,
    WrongType,
    Version,
    Path,
    Topic,
}

impl ErrorCode {
    /// The code as written in the spec and the vectors (`not-a-map`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Oversize => "oversize",
            ErrorCode::Malformed => "malformed",
            ErrorCode::NotAMap => "not-a-map",
            ErrorCode::MissingField => "missing-field",
            ErrorCode::WrongType => "wrong-type",
            ErrorCode::Version => "version",
            ErrorCode::Path => "path",
            ErrorCode::Topic => "topic",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused message: the rule it broke and a human-readable detail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodeError {
    pub code: ErrorCode,
    pub detail: String,
}

impl DecodeError {
    fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for DecodeError {}

// ------------------------------------------------------------------------ msgpack

/// A msgpack value as read from a body. Map keys are always strings (the protocol
/// refuses other keys) and unique (a duplicate key is refused as malformed).
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Nil,
    Bool(bool),
    /// Any msgpack integer (the full `i64` and `u64` ranges fit).
    Int(i128),
    Float(f64),
    Str(String),
    Bin(Vec<u8>),
    Array(Vec<Value>),
    Map(BTreeMap<String, Value>),
    Ext(i8, Vec<u8>),
}

impl Value {
    /// The msgpack family name, for error details.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Nil => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bin(_) => "bin",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Ext(..) => "ext",
        }
    }
}

/// msgpack's predefined extension type -1 (timestamp).
const TIMESTAMP_EXT: i8 = -1;

/// The timestamp extension's own rules (what the reference decoder enforces): 4, 8 or
/// 12 bytes, nanoseconds at most 999,999,999.
fn check_timestamp(data: &[u8]) -> Result<(), String> {
    let be_u32 = |bytes: &[u8]| u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    let nanoseconds = match data.len() {
        4 => 0,
        8 => be_u32(data) >> 2,
        12 => be_u32(data),
        len => return Err(format!("invalid timestamp data (length {len})")),
    };
    if nanoseconds > 999_999_999 {
        return Err(format!("nanoseconds {nanoseconds} > 999999999"));
    }
    Ok(())
}

fn malformed(detail: impl Into<String>) -> DecodeError {
    DecodeError::new(ErrorCode::Malformed, detail)
}

struct MsgpackReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> MsgpackReader<'a> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, count: usize) -> Result<&'a [u8], DecodeError> {
        if count > self.remaining() {
            return Err(malformed(format!(
                "truncated msgpack: {count} bytes needed at offset {}, {} left",
                self.pos,
                self.remaining()
            )));
        }
        let slice = &self.bytes[self.pos..self.pos + count];
        self.pos += count;
        Ok(slice)
    }

    fn byte(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn uint(&mut self, width: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(width)?
            .iter()
            .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte)))
    }

    fn length(&mut self, width: usize) -> Result<usize, DecodeError> {
        // u32 always fits in usize on the platforms Bevy supports.
        Ok(self.uint(width)? as usize)
    }

    /// Reject a container whose element count cannot fit in the bytes left
    /// (each element takes at least one byte), before allocating for it.
    fn check_count(&self, count: usize, per_element: usize) -> Result<(), DecodeError> {
        if count.saturating_mul(per_element) > self.remaining() {
            return Err(malformed(format!(
                "truncated msgpack: container of {count} elements at offset {} with {} bytes left",
                self.pos,
                self.remaining()
            )));
        }
        Ok(())
    }

    fn string(&mut self, len: usize) -> Result<String, DecodeError> {
        let at = self.pos;
        let raw = self.take(len)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| malformed(format!("string at offset {at} is not valid UTF-8")))
    }

    fn array(&mut self, count: usize, depth: usize) -> Result<Value, DecodeError> {
        self.enter(depth)?;
        self.check_count(count, 1)?;
        let mut items = Vec::with_capacity(count);
        for _ in 0..count {
            items.push(self.value(depth + 1)?);
        }
        Ok(Value::Array(items))
    }

    fn map(&mut self, count: usize, depth: usize) -> Result<Value, DecodeError> {
        self.enter(depth)?;
        self.check_count(count, 2)?;
        let mut entries = BTreeMap::new();
        for _ in 0..count {
            let at = self.pos;
            let key = match self.value(depth + 1)? {
                Value::Str(key) => key,
                other => {
                    return Err(malformed(format!(
                        "map key at offset {at} is a {}, not a string",
                        other.type_name()
                    )));
                }
            };
            let value = self.value(depth + 1)?;
            if entries.contains_key(&key) {
                return Err(malformed(format!("map key {key:?} appears twice")));
            }
            entries.insert(key, value);
        }
        Ok(Value::Map(entries))
    }

    fn enter(&self, depth: usize) -> Result<(), DecodeError> {
        if depth > MAX_DEPTH {
            return Err(malformed(format!("nesting deeper than {MAX_DEPTH}")));
        }
        Ok(())
    }

    fn ext(&mut self, len: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        let kind = self.byte()? as i8;
        let data = self.take(len)?.to_vec();
        if kind == TIMESTAMP_EXT {
            check_timestamp(&data)
                .map_err(|problem| malformed(format!("timestamp at offset {at}: {problem}")))?;
        }
        Ok(Value::Ext(kind, data))
    }

    /// One value; `depth` is the nesting level a container starting here would have.
    fn value(&mut self, depth: usize) -> Result<Value, DecodeError> {
        let at = self.pos;
        let marker = self.byte()?;
        let value = match marker {
            0x00..=0x7f => Value::Int(i128::from(marker)),
            0x80..=0x8f => return self.map(usize::from(marker & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(marker & 0x0f), depth),
            0xa0..=0xbf => Value::Str(self.string(usize::from(marker & 0x1f))?),
            0xc0 => Value::Nil,
            0xc1 => {
                return Err(malformed(format!(
                    "reserved msgpack byte 0xc1 at offset {at}"
                )));
            }
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let len = self.length(1 << (marker - 0xc4))?;
                Value::Bin(self.take(len)?.to_vec())
            }
            0xc7..=0xc9 => {
                let len = self.length(1 << (marker - 0xc7))?;
                self.ext(len)?
            }
            0xca => Value::Float(f64::from(f32::from_bits(self.uint(4)? as u32))),
            0xcb => Value::Float(f64::from_bits(self.uint(8)?)),
            0xcc..=0xcf => Value::Int(i128::from(self.uint(1 << (marker - 0xcc))?)),
            0xd0 => Value::Int(i128::from(self.uint(1)? as u8 as i8)),
            0xd1 => Value::Int(i128::from(self.uint(2)? as u16 as i16)),
            0xd2 => Value::Int(i128::from(self.uint(4)? as u32 as i32)),
            0xd3 => Value::Int(i128::from(self.uint(8)? as i64)),
            0xd4..=0xd8 => self.ext(1 << (marker - 0xd4))?,
            0xd9..=0xdb => {
                let len = self.length(1 << (marker - 0xd9))?;
                Value::Str(self.string(len)?)
            }
            0xdc | 0xdd => {
                let count = self.length(if marker == 0xdc { 2 } else { 4 })?;
                return self.array(count, depth);
            }
            0xde | 0xdf => {
                let count = self.length(if marker == 0xde { 2 } else { 4 })?;
                return self.map(count, depth);
            }
            0xe0..=0xff => Value::Int(i128::from(marker as i8)),
        };
        Ok(value)
    }
}

/// Checks 1–3 of the spec's order: size bound, well-formed msgpack, a map at the top.
pub fn parse_body(body: &[u8], max_bytes: usize) -> Result<BTreeMap<String, Value>, DecodeError> {
    if body.len() > max_bytes {
        return Err(DecodeError::new(
            ErrorCode::Oversize,
            format!(
                "body is {} bytes, over the {max_bytes}-byte bound",
                body.len()
            ),
        ));
    }
    let mut reader = MsgpackReader {
        bytes: body,
        pos: 0,
    };
    let value = reader.value(1)?;
    if reader.remaining() > 0 {
        return Err(malformed(format!(
            "{} trailing bytes after the body's msgpack value",
            reader.remaining()
        )));
    }
    match value {
        Value::Map(map) => Ok(map),
        other => Err(DecodeError::new(
            ErrorCode::NotAMap,
            format!("body is a msgpack {}, not a map", other.type_name()),
        )),
    }
}

// ------------------------------------------------------------------------ messages

/// One output file that was added, modified or removed (`assets-changed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Asset {
    pub target: String,
    pub path: String,
    pub engine_path: Option<String>,
    pub kind: String,
    pub change: String,
    pub hash: String,
    pub sprites: Vec<String>,
    pub atlas: Option<String>,
}

/// One problem of a failed build (`build-failed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BuildError {
    pub file: Option<String>,
    pub line: Option<u64>,
    pub column: Option<u64>,
    pub sprite: Option<String>,
    pub stage: Option<String>,
    pub message: String,
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{file}")?;
            if let Some(line) = self.line {
                write!(f, ":{line}")?;
                if let Some(column) = self.column {
                    write!(f, ":{column}")?;
                }
            }
            write!(f, ": ")?;
        }
        if let Some(stage) = &self.stage {
            write!(f, "[{stage}] ")?;
        }
        if let Some(sprite) = &self.sprite {
            write!(f, "sprite '{sprite}': ")?;
        }
        f.write_str(&self.message)
    }
}

/// The typed payload of a known message type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello {
        interval_ms: u64,
        build: u64,
    },
    BuildStarted {
        build: u64,
        trigger: Vec<String>,
    },
    AssetsChanged {
        build: u64,
        assets: Vec<Asset>,
    },
    BuildFailed {
        build: u64,
        errors: Vec<BuildError>,
    },
    BuildFinished {
        build: u64,
        ok: bool,
        duration_ms: u64,
        changed: u64,
    },
}

/// A message that passed every check: its common fields, raw map and typed payload.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The `type` field (also for types this decoder does not know).
    pub kind: String,
    pub session: String,
    pub seq: u64,
    pub project: String,
    /// `None` for an unknown type: ignored, but it still counts for `seq`.
    pub message: Option<Message>,
    /// The whole body as decoded.
    pub raw: BTreeMap<String, Value>,
}

impl Envelope {
    /// True for a valid message of a type this decoder skips.
    pub fn ignored(&self) -> bool {
        self.message.is_none()
    }
}

/// Why `path` is not a normalized relative `/`-separated path, or `None` if it is.
pub fn path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("is empty");
    }
    if path.starts_with('/') {
        return Some("is absolute (starts with '/')");
    }
    for (needle, what) in [
        ('\\', "contains a backslash"),
        ('\0', "contains a NUL byte"),
        (':', "contains a ':' (drive letter or URL)"),
    ] {
        if path.contains(needle) {
            return Some(what);
        }
    }
    for component in path.split('/') {
        match component {
            ".." => return Some("has a '..' component"),
            "." => return Some("has a '.' component"),
            "" => return Some("has an empty component ('//' or a trailing '/')"),
            _ => {}
        }
    }
    None
}

/// The spec's *Paths* rules for one asset.
pub fn validate_engine_path(
    target: &str,
    path: &str,
    engine_path: Option<&str>,
) -> Result<(), DecodeError> {
    if let Some(problem) = path_problem(path) {
        return Err(DecodeError::new(
            ErrorCode::Path,
            format!("asset path {path:?} {problem}"),
        ));
    }
    let Some(engine_path) = engine_path else {
        return Ok(());
    };
    let rest = if target == "godot" {
        engine_path.strip_prefix("res://").ok_or_else(|| {
            DecodeError::new(
                ErrorCode::Path,
                format!("godot engine_path {engine_path:?} does not start with \"res://\""),
            )
        })?
    } else {
        engine_path
    };
    if let Some(problem) = path_problem(rest) {
        return Err(DecodeError::new(
            ErrorCode::Path,
            format!("{target} engine_path {engine_path:?} {problem}"),
        ));
    }
    Ok(())
}

/// Typed field access on one map; `prefix` names it in details (`assets[2].`).
struct Fields<'a> {
    map: &'a BTreeMap<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    fn get(&self, key: &str) -> Result<&'a Value, DecodeError> {
        self.map.get(key).ok_or_else(|| {
            DecodeError::new(
                ErrorCode::MissingField,
                format!("{}{key} is missing", self.prefix),
            )
        })
    }

    fn wrong(&self, key: &str, expected: &str, value: &Value) -> DecodeError {
        DecodeError::new(
            ErrorCode::WrongType,
            format!(
                "{}{key} must be {expected}, found {}",
                self.prefix,
                value.type_name()
            ),
        )
    }

    fn check_int(&self, key: &str, value: &Value) -> Result<u64, DecodeError> {
        match value {
            Value::Int(number) if (0..=i128::from(MAX_INT)).contains(number) => Ok(*number as u64),
            Value::Int(_) => Err(self.wrong(key, "an int in 0..2^53-1", value)),
            _ => Err(self.wrong(key, "an int", value)),
        }
    }

    fn int(&self, key: &str) -> Result<u64, DecodeError> {
        self.check_int(key, self.get(key)?)
    }

    fn opt_int(&self, key: &str) -> Result<Option<u64>, DecodeError> {
        match self.get(key)? {
            Value::Nil => Ok(None),
            value => self.check_int(key, value).map(Some),
        }
    }

    fn str(&self, key: &str) -> Result<String, DecodeError> {
        match self.get(key)? {
            Value::Str(text) => Ok(text.clone()),
            value => Err(self.wrong(key, "a str", value)),
        }
    }

    fn opt_str(&self, key: &str) -> Result<Option<String>, DecodeError> {
        match self.get(key)? {
            Value::Nil => Ok(None),
            Value::Str(text) => Ok(Some(text.clone())),
            value => Err(self.wrong(key, "a str or nil", value)),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, DecodeError> {
        match self.get(key)? {
            Value::Bool(flag) => Ok(*flag),
            value => Err(self.wrong(key, "a bool", value)),
        }
    }

    fn array(&self, key: &str) -> Result<&'a [Value], DecodeError> {
        match self.get(key)? {
            Value::Array(items) => Ok(items),
            value => Err(self.wrong(key, "an array", value)),
        }
    }

    fn str_array(&self, key: &str) -> Result<Vec<String>, DecodeError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Str(text) => Ok(text.clone()),
                other => Err(self.wrong(&format!("{key}[{index}]"), "a str", other)),
            })
            .collect()
    }

    /// Every item must be a map (all checked before any item's fields are read).
    fn maps(&self, key: &str) -> Result<Vec<Fields<'a>>, DecodeError> {
        self.array(key)?
            .iter()
            .enumerate()
            .map(|(index, item)| match item {
                Value::Map(map) => Ok(Fields {
                    map,
                    prefix: format!("{}{key}[{index}].", self.prefix),
                }),
                other => Err(self.wrong(&format!("{key}[{index}]"), "a map", other)),
            })
            .collect()
    }
}

fn decode_asset(item: &Fields<'_>) -> Result<Asset, DecodeError> {
    Ok(Asset {
        target: item.str("target")?,
        path: item.str("path")?,
        engine_path: item.opt_str("engine_path")?,
        kind: item.str("kind")?,
        change: item.str("change")?,
        hash: item.str("hash")?,
        sprites: item.str_array("sprites")?,
        atlas: item.opt_str("atlas")?,
    })
}

fn decode_build_error(item: &Fields<'_>) -> Result<BuildError, DecodeError> {
    Ok(BuildError {
        file: item.opt_str("file")?,
        line: item.opt_int("line")?,
        column: item.opt_int("column")?,
        sprite: item.opt_str("sprite")?,
        stage: item.opt_str("stage")?,
        message: item.str("message")?,
    })
}

/// Checks 4–9 of the spec's order on a parsed map.
fn validate(topic: &[u8], body: BTreeMap<String, Value>) -> Result<Envelope, DecodeError> {
    let fields = Fields {
        map: &body,
        prefix: String::new(),
    };
    // `v` first: a future version may change every other field.
    match fields.get("v")? {
        Value::Int(version) if *version == i128::from(PROTOCOL_VERSION) => {}
        Value::Int(version) => {
            return Err(DecodeError::new(
                ErrorCode::Version,
                format!("v is {version}; this decoder speaks version {PROTOCOL_VERSION}"),
            ));
        }
        other => return Err(fields.wrong("v", "an int", other)),
    }
    let kind = fields.str("type")?;
    let expected_topic = format!("{TOPIC_PREFIX}{kind}");
    if topic != expected_topic.as_bytes() {
        return Err(DecodeError::new(
            ErrorCode::Topic,
            format!(
                "topic {:?} does not match type {kind:?}",
                String::from_utf8_lossy(topic)
            ),
        ));
    }
    let seq = fields.int("seq")?;
    let session = fields.str("session")?;
    let project = fields.str("project")?;

    let message = match kind.as_str() {
        "hello" => Some(Message::Hello {
            interval_ms: fields.int("interval_ms")?,
            build: fields.int("build")?,
        }),
        "build-started" => Some(Message::BuildStarted {
            build: fields.int("build")?,
            trigger: fields.str_array("trigger")?,
        }),
        "assets-changed" => {
            let build = fields.int("build")?;
            let assets = fields
                .maps("assets")?
                .iter()
                .map(decode_asset)
                .collect::<Result<Vec<_>, _>>()?;
            for asset in &assets {
                validate_engine_path(&asset.target, &asset.path, asset.engine_path.as_deref())?;
            }
            Some(Message::AssetsChanged { build, assets })
        }
        "build-failed" => {
            let build = fields.int("build")?;
            let errors = fields
                .maps("errors")?
                .iter()
                .map(decode_build_error)
                .collect::<Result<Vec<_>, _>>()?;
            Some(Message::BuildFailed { build, errors })
        }
        "build-finished" => Some(Message::BuildFinished {
            build: fields.int("build")?,
            ok: fields.bool("ok")?,
            duration_ms: fields.int("duration_ms")?,
            changed: fields.int("changed")?,
        }),
        _ => None,
    };
    Ok(Envelope {
        kind,
        session,
        seq,
        project,
        message,
        raw: body,
    })
}

/// Decode and check one message (topic frame + body frame) in the spec's check order.
pub fn decode(topic: &[u8], body: &[u8], max_bytes: usize) -> Result<Envelope, DecodeError> {
    let map = parse_body(body, max_bytes)?;
    validate(topic, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = vec![0x80 | entries.len() as u8];
        for (key, value) in entries {
            out.push(0xa0 | key.len() as u8);
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        // array32 claiming 4 billion elements in a 5-byte body.
        let body = [0xdd, 0xff, 0xff, 0xff, 0xff];
        let error = parse_body(&body, MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(error.code, ErrorCode::Malformed);
    }

    #[test]
    fn nesting_of_exactly_max_depth_is_accepted_and_one_more_is_not() {
        let nested = |depth: usize| {
            // {"a": [[[...]]]} with `depth` containers in all.
            let mut body = vec![0x81, 0xa1, b'a'];
            body.extend(std::iter::repeat_n(0x91, depth - 2));
            body.push(0x90);
            body
        };
        assert!(parse_body(&nested(MAX_DEPTH), MAX_MESSAGE_BYTES).is_ok());
        let error = parse_body(&nested(MAX_DEPTH + 1), MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(error.code, ErrorCode::Malformed);
    }

    #[test]
    fn timestamp_extensions_follow_their_own_rules() {
        let with = |ext: &[u8]| {
            let mut body = vec![0x81, 0xa1, b'x'];
            body.extend_from_slice(ext);
            parse_body(&body, MAX_MESSAGE_BYTES).map(|_| ())
        };
        assert!(with(&[0xd6, 0xff, 0, 0, 0, 1]).is_ok());
        let ts64 = |nanoseconds: u64| {
            let mut ext = vec![0xd7, 0xff];
            ext.extend_from_slice(&((nanoseconds << 34) | 5).to_be_bytes());
            with(&ext)
        };
        assert!(ts64(999_999_999).is_ok());
        assert_eq!(ts64(1_000_000_000).unwrap_err().code, ErrorCode::Malformed);
        let mut ts96 = vec![0xc7, 12, 0xff];
        ts96.extend_from_slice(&1_000_000_000u32.to_be_bytes());
        ts96.extend_from_slice(&1i64.to_be_bytes());
        assert_eq!(with(&ts96).unwrap_err().code, ErrorCode::Malformed);
        assert_eq!(
            with(&[0xd5, 0xff, 0, 0]).unwrap_err().code,
            ErrorCode::Malformed
        );
        assert!(
            with(&[0xd5, 0x05, 0, 0]).is_ok(),
            "other extension types are opaque"
        );
    }

    #[test]
    fn oversize_is_checked_before_parsing() {
        let error = parse_body(&[0xc1; 10], 9).unwrap_err();
        assert_eq!(error.code, ErrorCode::Oversize);
    }

    #[test]
    fn version_is_checked_before_other_fields() {
        let body = map(&[("v", &[0x02])]);
        let error = decode(b"sparky.hello", &body, MAX_MESSAGE_BYTES).unwrap_err();
        assert_eq!(error.code, ErrorCode::Version);
    }

    #[test]
    fn unknown_type_is_ignored_but_valid() {
        let body = map(&[
            ("v", &[0x01]),
            ("type", b"\xa4ping"),
            ("seq", &[0x07]),
            ("session", b"\xa1s"),
            ("project", b"\xa1p"),
        ]);
        let envelope = decode(b"sparky.ping", &body, MAX_MESSAGE_BYTES).unwrap();
        assert!(envelope.ignored());
        assert_eq!(envelope.seq, 7);
    }

    #[test]
    fn path_rules_match_the_spec() {
        for bad in [
            "", "/abs", "a\\b", "a\0b", "c:/x", "a/../b", "./a", "a//b", "a/",
        ] {
            assert!(path_problem(bad).is_some(), "{bad:?} should be refused");
        }
        assert!(path_problem("sprites/hero_0.png").is_none());
        assert!(validate_engine_path("godot", "a.tres", Some("res://sprites/a.tres")).is_ok());
        assert!(validate_engine_path("godot", "a.tres", Some("sprites/a.tres")).is_err());
        assert!(validate_engine_path("bevy", "a.png", Some("res://a.png")).is_err());
    }
}
