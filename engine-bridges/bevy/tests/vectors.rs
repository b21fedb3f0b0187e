//! The protocol decoder against every shared vector in `tests/vectors/` (listed in its
//! `INDEX`): valid bodies decode to exactly the JSON's `decoded` map, refused bodies
//! give exactly the JSON's `error` code, and nothing panics.

mod common;

use std::collections::BTreeMap;

use bevy_sparky::protocol::{MAX_MESSAGE_BYTES, Message, Value, decode};
use serde_json::Value as Json;

/// A decoded msgpack value as JSON; `None` for what JSON cannot hold (bin, ext).
fn to_json(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Nil => Json::Null,
        Value::Bool(flag) => Json::Bool(*flag),
        Value::Int(number) => {
            if let Ok(small) = i64::try_from(*number) {
                Json::from(small)
            } else {
                Json::from(u64::try_from(*number).ok()?)
            }
        }
        Value::Float(number) => Json::from(*number),
        Value::Str(text) => Json::String(text.clone()),
        Value::Array(items) => Json::Array(items.iter().map(to_json).collect::<Option<_>>()?),
        Value::Map(entries) => Json::Object(map_to_json(entries)?),
        Value::Bin(_) | Value::Ext(..) => return None,
    })
}

fn map_to_json(entries: &BTreeMap<String, Value>) -> Option<serde_json::Map<String, Json>> {
    entries
        .iter()
        .map(|(key, value)| Some((key.clone(), to_json(value)?)))
        .collect()
}

/// Integers compare by value whatever their JSON representation (`2000` vs `2000.0`).
fn same(left: &Json, right: &Json) -> bool {
    match (left, right) {
        (Json::Number(a), Json::Number(b)) => a.as_f64() == b.as_f64(),
        (Json::Array(a), Json::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| same(x, y))
        }
        (Json::Object(a), Json::Object(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, x)| b.get(key).is_some_and(|y| same(x, y)))
        }
        _ => left == right,
    }
}

#[test]
fn the_decoder_agrees_with_every_shared_vector() {
    let folder = common::repo_root().join("tests/vectors");
    let index = std::fs::read_to_string(folder.join("INDEX"))
        .unwrap_or_else(|error| panic!("{}/INDEX: {error}", folder.display()));
    let names: Vec<&str> = index
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    assert!(
        names.len() >= 50,
        "only {} vectors listed in INDEX",
        names.len()
    );

    let mut failures = Vec::new();
    let (mut accepted, mut refused) = (0, 0);
    for name in &names {
        let spec: Json = serde_json::from_str(
            &std::fs::read_to_string(folder.join(format!("{name}.json"))).unwrap(),
        )
        .unwrap_or_else(|error| panic!("{name}.json: {error}"));
        let body = std::fs::read(folder.join(format!("{name}.msgpack"))).unwrap();
        let topic = spec["topic"].as_str().expect("topic").as_bytes();
        let max_bytes = spec
            .get("max_bytes")
            .and_then(Json::as_u64)
            .map_or(MAX_MESSAGE_BYTES, |n| n as usize);
        let result = std::panic::catch_unwind(|| decode(topic, &body, max_bytes));
        let Ok(result) = result else {
            failures.push(format!("{name}: the decoder panicked"));
            continue;
        };
        match (spec["expect"].as_str(), result) {
            (Some("ok"), Ok(envelope)) => {
                accepted += 1;
                let mut raw = envelope.raw.clone();
                for key in spec
                    .get("unrepresentable")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    let key = key.as_str().unwrap();
                    assert!(
                        raw.remove(key).is_some(),
                        "{name}: unrepresentable key {key} not in the body"
                    );
                }
                let decoded = Json::Object(
                    map_to_json(&raw).unwrap_or_else(|| panic!("{name}: bin/ext value left")),
                );
                if !same(&decoded, &spec["decoded"]) {
                    failures.push(format!(
                        "{name}: decoded {decoded} != expected {}",
                        spec["decoded"]
                    ));
                }
                let ignored = spec.get("ignored").and_then(Json::as_bool).unwrap_or(false);
                if envelope.ignored() != ignored {
                    failures.push(format!(
                        "{name}: ignored = {} but the vector says {ignored}",
                        envelope.ignored()
                    ));
                }
                check_typed_fields(name, &envelope, &spec["decoded"], &mut failures);
            }
            (Some("ok"), Err(error)) => {
                failures.push(format!("{name}: refused ({error}) but should decode"))
            }
            (Some("reject"), Ok(_)) => failures.push(format!(
                "{name}: decoded but should be refused with {}",
                spec["error"]
            )),
            (Some("reject"), Err(error)) => {
                refused += 1;
                if Some(error.code.as_str()) != spec["error"].as_str() {
                    failures.push(format!(
                        "{name}: error {} ({}) but the vector says {}",
                        error.code, error.detail, spec["error"]
                    ));
                }
            }
            (other, _) => failures.push(format!("{name}: unknown expect {other:?}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} vectors disagree:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
    assert!(
        accepted > 0 && refused > 0,
        "accepted {accepted}, refused {refused}"
    );
    eprintln!(
        "{} vectors: {accepted} decoded, {refused} refused",
        names.len()
    );
}

/// The typed payload carries the same values as the JSON.
fn check_typed_fields(
    name: &str,
    envelope: &bevy_sparky::protocol::Envelope,
    json: &Json,
    failures: &mut Vec<String>,
) {
    let mut check = |what: &str, ok: bool| {
        if !ok {
            failures.push(format!("{name}: typed field {what} differs from the JSON"));
        }
    };
    check("seq", json["seq"].as_u64() == Some(envelope.seq));
    check(
        "session",
        json["session"].as_str() == Some(envelope.session.as_str()),
    );
    check(
        "project",
        json["project"].as_str() == Some(envelope.project.as_str()),
    );
    check(
        "type",
        json["type"].as_str() == Some(envelope.kind.as_str()),
    );
    match &envelope.message {
        Some(Message::Hello { interval_ms, build }) => {
            check(
                "interval_ms",
                json["interval_ms"].as_u64() == Some(*interval_ms),
            );
            check("build", json["build"].as_u64() == Some(*build));
        }
        Some(Message::BuildStarted { build, trigger }) => {
            check("build", json["build"].as_u64() == Some(*build));
            let expected: Vec<&str> = json["trigger"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Json::as_str)
                .collect();
            check(
                "trigger",
                expected == trigger.iter().map(String::as_str).collect::<Vec<_>>(),
            );
        }
        Some(Message::AssetsChanged { build, assets }) => {
            check("build", json["build"].as_u64() == Some(*build));
            let expected = json["assets"].as_array().unwrap();
            check("assets.len", expected.len() == assets.len());
            for (asset, map) in assets.iter().zip(expected) {
                check(
                    "target",
                    map["target"].as_str() == Some(asset.target.as_str()),
                );
                check("path", map["path"].as_str() == Some(asset.path.as_str()));
                check(
                    "engine_path",
                    map["engine_path"].as_str() == asset.engine_path.as_deref(),
                );
                check("kind", map["kind"].as_str() == Some(asset.kind.as_str()));
                check(
                    "change",
                    map["change"].as_str() == Some(asset.change.as_str()),
                );
                check("hash", map["hash"].as_str() == Some(asset.hash.as_str()));
                check("atlas", map["atlas"].as_str() == asset.atlas.as_deref());
                check(
                    "sprites",
                    map["sprites"].as_array().unwrap().len() == asset.sprites.len(),
                );
            }
        }
        Some(Message::BuildFailed { build, errors }) => {
            check("build", json["build"].as_u64() == Some(*build));
            let expected = json["errors"].as_array().unwrap();
            check("errors.len", expected.len() == errors.len());
            for (error, map) in errors.iter().zip(expected) {
                check("file", map["file"].as_str() == error.file.as_deref());
                check("line", map["line"].as_u64() == error.line);
                check("column", map["column"].as_u64() == error.column);
                check("sprite", map["sprite"].as_str() == error.sprite.as_deref());
                check("stage", map["stage"].as_str() == error.stage.as_deref());
                check(
                    "message",
                    map["message"].as_str() == Some(error.message.as_str()),
                );
            }
        }
        Some(Message::BuildFinished {
            build,
            ok,
            duration_ms,
            changed,
        }) => {
            check("build", json["build"].as_u64() == Some(*build));
            check("ok", json["ok"].as_bool() == Some(*ok));
            check(
                "duration_ms",
                json["duration_ms"].as_u64() == Some(*duration_ms),
            );
            check("changed", json["changed"].as_u64() == Some(*changed));
        }
        None => {}
    }
}
