//! Differential test against the reference decoder: thousands of mutated vector
//! bodies (bit flips, byte changes, truncations, insertions, splices) go through this
//! crate's decoder and through `sparky_assets.hotreload.protocol` (Python, in one
//! subprocess); both must give the same result code for every body, and ours must
//! never panic. Deterministic (fixed seed).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use std::collections::BTreeMap;

use bevy_sparky::protocol::{MAX_MESSAGE_BYTES, Value, decode, parse_body};
use serde_json::{Value as Json, json};

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

const INTERESTING: [u8; 16] = [
    0x00, 0x01, 0x7f, 0x80, 0x90, 0xa0, 0xc0, 0xc1, 0xc2, 0xc4, 0xca, 0xcf, 0xd3, 0xd9, 0xdc, 0xff,
];

fn mutate(rng: &mut Rng, body: &[u8], other: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(out.len());
        match rng.below(6) {
            0 if !out.is_empty() => out[at] ^= 1 << rng.below(8),
            1 if !out.is_empty() => out[at] = INTERESTING[rng.below(INTERESTING.len())],
            2 => out.truncate(at),
            3 => out.insert(at.min(out.len()), INTERESTING[rng.below(INTERESTING.len())]),
            4 if !out.is_empty() => {
                out.remove(at);
            }
            _ => {
                let from = rng.below(other.len());
                let len = rng.below(16).min(other.len() - from.min(other.len()));
                let at = at.min(out.len());
                out.splice(at..at, other[from..from + len].iter().copied());
            }
        }
    }
    out
}

/// msgpack encoding of a decoded value (the smallest forms).
fn encode(value: &Value, out: &mut Vec<u8>) {
    let header = |out: &mut Vec<u8>, small: u8, len: usize, wide: [u8; 2]| {
        if len < 16 && small != 0xa0 || len < 32 && small == 0xa0 {
            out.push(small | len as u8);
        } else if len <= 0xffff {
            out.push(wide[0]);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(wide[1]);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
    };
    match value {
        Value::Nil => out.push(0xc0),
        Value::Bool(flag) => out.push(if *flag { 0xc3 } else { 0xc2 }),
        Value::Int(number) => {
            if let Ok(small) = i64::try_from(*number) {
                if (0..128).contains(&small) || (-32..0).contains(&small) {
                    out.push(small as i8 as u8);
                } else if small >= 0 {
                    out.push(0xcf);
                    out.extend_from_slice(&(small as u64).to_be_bytes());
                } else {
                    out.push(0xd3);
                    out.extend_from_slice(&small.to_be_bytes());
                }
            } else {
                out.push(0xcf);
                out.extend_from_slice(&(*number as u64).to_be_bytes());
            }
        }
        Value::Float(number) => {
            out.push(0xcb);
            out.extend_from_slice(&number.to_bits().to_be_bytes());
        }
        Value::Str(text) => {
            if text.len() < 32 {
                out.push(0xa0 | text.len() as u8);
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(text.len() as u32).to_be_bytes());
            }
            out.extend_from_slice(text.as_bytes());
        }
        Value::Bin(bytes) => {
            out.push(0xc6);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Value::Ext(kind, bytes) => {
            out.push(0xc9);
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.push(*kind as u8);
            out.extend_from_slice(bytes);
        }
        Value::Array(items) => {
            header(out, 0x90, items.len(), [0xdc, 0xdd]);
            for item in items {
                encode(item, out);
            }
        }
        Value::Map(entries) => {
            header(out, 0x80, entries.len(), [0xde, 0xdf]);
            for (key, item) in entries {
                encode(&Value::Str(key.clone()), out);
                encode(item, out);
            }
        }
    }
}

fn replacement(rng: &mut Rng) -> Value {
    let pool = [
        Value::Nil,
        Value::Bool(true),
        Value::Int(0),
        Value::Int(2),
        Value::Int(-1),
        Value::Int((1 << 53) - 1),
        Value::Int(1 << 53),
        Value::Int(u64::MAX.into()),
        Value::Float(1.0),
        Value::Str(String::new()),
        Value::Str("sparky.hello".into()),
        Value::Str("hello".into()),
        Value::Str("bevy".into()),
        Value::Str("godot".into()),
        Value::Str("res://".into()),
        Value::Str("res://a/../b".into()),
        Value::Str("sprites/./a.png".into()),
        Value::Str("../x".into()),
        Value::Str("/abs".into()),
        Value::Str("c:x".into()),
        Value::Str("a\\b".into()),
        Value::Str("a//b".into()),
        Value::Bin(vec![1, 2]),
        Value::Ext(5, vec![0]),
        Value::Array(vec![]),
        Value::Array(vec![Value::Int(1)]),
        Value::Map(BTreeMap::new()),
    ];
    pool[rng.below(pool.len())].clone()
}

/// Change one value somewhere in the tree: replace it, delete a key, add a key.
fn mutate_tree(rng: &mut Rng, value: &mut Value) {
    match value {
        Value::Map(entries) if !entries.is_empty() && rng.below(3) != 0 => {
            let key = entries
                .keys()
                .nth(rng.below(entries.len()))
                .unwrap()
                .clone();
            match rng.below(4) {
                0 => {
                    entries.remove(&key);
                }
                1 => {
                    entries.insert(key, replacement(rng));
                }
                2 => {
                    entries.insert(format!("x{}", rng.below(9)), replacement(rng));
                }
                _ => mutate_tree(rng, entries.get_mut(&key).unwrap()),
            }
        }
        Value::Array(items) if !items.is_empty() && rng.below(3) != 0 => {
            let at = rng.below(items.len());
            match rng.below(3) {
                0 => {
                    items.remove(at);
                }
                1 => items[at] = replacement(rng),
                _ => mutate_tree(rng, &mut items[at]),
            }
        }
        _ => *value = replacement(rng),
    }
}

fn our_code(topic: &str, body: &[u8]) -> String {
    match decode(topic.as_bytes(), body, MAX_MESSAGE_BYTES) {
        Ok(envelope) if envelope.ignored() => "ignored".into(),
        Ok(_) => "ok".into(),
        Err(error) => error.code.as_str().into(),
    }
}

#[test]
fn mutated_vectors_get_the_same_verdict_as_the_python_decoder() {
    let folder = common::repo_root().join("tests/vectors");
    let index = std::fs::read_to_string(folder.join("INDEX")).unwrap();
    let vectors: Vec<(String, Vec<u8>)> = index
        .lines()
        .filter(|name| !name.trim().is_empty())
        .map(|name| {
            let spec: Json = serde_json::from_str(
                &std::fs::read_to_string(folder.join(format!("{name}.json"))).unwrap(),
            )
            .unwrap();
            let body = std::fs::read(folder.join(format!("{name}.msgpack"))).unwrap();
            (spec["topic"].as_str().unwrap().to_owned(), body)
        })
        .filter(|(_, body)| body.len() <= 64 * 1024)
        .collect();

    let mut rng = Rng(0x5eed_5a4c_11e5_0001);
    let mut cases = Vec::new();
    for (topic, body) in &vectors {
        for _ in 0..40 {
            let other = &vectors[rng.below(vectors.len())].1;
            cases.push((topic.clone(), mutate(&mut rng, body, other)));
        }
    }
    // Structure-aware: decode the valid vectors, change 1-3 values, re-encode. These
    // reach the field checks (and their order) instead of the msgpack reader.
    for (topic, body) in &vectors {
        let Ok(map) = parse_body(body, MAX_MESSAGE_BYTES) else {
            continue;
        };
        for _ in 0..40 {
            let mut tree = Value::Map(map.clone());
            for _ in 0..=rng.below(3) {
                if let Value::Map(entries) = &mut tree
                    && !entries.is_empty()
                    && rng.below(20) != 0
                {
                    // Mostly below the root, so the body stays a map.
                    let key = entries
                        .keys()
                        .nth(rng.below(entries.len()))
                        .unwrap()
                        .clone();
                    match rng.below(3) {
                        0 => {
                            entries.remove(&key);
                        }
                        _ => mutate_tree(&mut rng, entries.get_mut(&key).unwrap()),
                    }
                } else {
                    mutate_tree(&mut rng, &mut tree);
                }
            }
            let mut mutated = Vec::new();
            encode(&tree, &mut mutated);
            let topic = if rng.below(10) == 0 {
                "sparky.hello".to_owned()
            } else {
                topic.clone()
            };
            cases.push((topic, mutated));
        }
    }
    let ours: Vec<String> = cases
        .iter()
        .map(|(topic, body)| our_code(topic, body))
        .collect();

    let python = std::env::var("SPARKY_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut child = Command::new(&python)
        .arg(common::crate_dir().join("tests/decode_with_python.py"))
        .current_dir(common::repo_root())
        .env("PYTHONPATH", common::repo_root())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    let mut input = String::new();
    for (topic, body) in &cases {
        let hex: String = body.iter().map(|byte| format!("{byte:02x}")).collect();
        input.push_str(
            &json!({"topic": topic, "body": hex, "max_bytes": MAX_MESSAGE_BYTES}).to_string(),
        );
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()).unwrap());
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        output.status.success(),
        "the Python decoder failed (set SPARKY_PYTHON to the venv python)"
    );
    let theirs: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Json>(line).unwrap()["code"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(theirs.len(), cases.len());

    let disagreements: Vec<String> = cases
        .iter()
        .zip(ours.iter().zip(&theirs))
        .filter(|(_, (ours, theirs))| ours != theirs)
        .map(|((topic, body), (ours, theirs))| {
            let hex: String = body.iter().map(|byte| format!("{byte:02x}")).collect();
            format!("{topic} {hex}: rust {ours}, python {theirs}")
        })
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for code in &ours {
        *counts.entry(code.as_str()).or_insert(0) += 1;
    }
    eprintln!("{} mutated bodies, verdicts: {counts:?}", cases.len());
    assert!(
        disagreements.is_empty(),
        "{} of {} bodies disagree; first ones:\n{}",
        disagreements.len(),
        cases.len(),
        disagreements
            .iter()
            .take(15)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
