//! Shared test helpers: a headless Bevy app on a temporary assets folder, a pump
//! that updates it until a condition holds, a msgpack encoder for hand-built
//! messages, and the atlas fixture.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bevy::asset::AssetPlugin;
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::prelude::*;

/// The crate folder (`engine-bridges/bevy`).
pub fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The repository root (two levels above the crate).
pub fn repo_root() -> PathBuf {
    crate_dir()
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// A headless app (no window, no renderer) whose asset folder is `assets`: assets,
/// images (PNG) and texture atlas layouts, plus `SparkyPlugin`.
pub fn headless_app(assets: &Path) -> App {
    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins,
        AssetPlugin {
            file_path: assets.to_string_lossy().into_owned(),
            ..Default::default()
        },
        ImagePlugin::default(),
    ));
    // Without a renderer nothing registers the image loader; CPU-side images are enough.
    app.register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()));
    app.add_plugins(bevy_sparky::SparkyPlugin);
    app
}

/// Update `app` until `done` holds; panics after `timeout` with `what`.
pub fn pump_until(
    app: &mut App,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&mut App) -> bool,
) {
    let start = Instant::now();
    loop {
        app.update();
        if done(app) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Copy a directory tree.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Hand-built msgpack values for messages the tests send.
#[derive(Clone, Debug)]
pub enum Mp {
    Nil,
    Bool(bool),
    Int(i64),
    Str(String),
    Array(Vec<Mp>),
    Map(Vec<(String, Mp)>),
}

pub fn s(text: &str) -> Mp {
    Mp::Str(text.to_owned())
}

pub fn map(entries: &[(&str, Mp)]) -> Mp {
    Mp::Map(
        entries
            .iter()
            .map(|(key, value)| (key.to_string(), value.clone()))
            .collect(),
    )
}

/// Encode like the Python publisher (smallest encodings).
pub fn encode(value: &Mp, out: &mut Vec<u8>) {
    match value {
        Mp::Nil => out.push(0xc0),
        Mp::Bool(flag) => out.push(if *flag { 0xc3 } else { 0xc2 }),
        Mp::Int(number) => {
            let number = *number;
            if (0..128).contains(&number) {
                out.push(number as u8);
            } else if (-32..0).contains(&number) {
                out.push(number as i8 as u8);
            } else if number >= 0 {
                out.push(0xcf);
                out.extend_from_slice(&(number as u64).to_be_bytes());
            } else {
                out.push(0xd3);
                out.extend_from_slice(&number.to_be_bytes());
            }
        }
        Mp::Str(text) => {
            let len = text.len();
            if len < 32 {
                out.push(0xa0 | len as u8);
            } else {
                out.push(0xdb);
                out.extend_from_slice(&(len as u32).to_be_bytes());
            }
            out.extend_from_slice(text.as_bytes());
        }
        Mp::Array(items) => {
            out.push(0xdd);
            out.extend_from_slice(&(items.len() as u32).to_be_bytes());
            for item in items {
                encode(item, out);
            }
        }
        Mp::Map(entries) => {
            out.push(0xdf);
            out.extend_from_slice(&(entries.len() as u32).to_be_bytes());
            for (key, item) in entries {
                encode(&Mp::Str(key.clone()), out);
                encode(item, out);
            }
        }
    }
}

/// The two frames of a protocol message: `sparky.<type>` and the body.
pub fn message(kind: &str, session: &str, seq: i64, fields: &[(&str, Mp)]) -> (Vec<u8>, Vec<u8>) {
    let mut entries = vec![
        ("v", Mp::Int(1)),
        ("type", s(kind)),
        ("seq", Mp::Int(seq)),
        ("session", s(session)),
        ("project", s("dungeon")),
    ];
    entries.extend(fields.iter().cloned());
    let mut body = Vec::new();
    encode(&map(&entries), &mut body);
    (format!("sparky.{kind}").into_bytes(), body)
}

/// One `bevy` asset map of an `assets-changed` message.
pub fn bevy_asset(path: &str, engine_path: &str, kind: &str, change: &str) -> Mp {
    map(&[
        ("target", s("bevy")),
        ("path", s(path)),
        ("engine_path", s(engine_path)),
        ("kind", s(kind)),
        ("change", s(change)),
        ("hash", s(&"0".repeat(64))),
        ("sprites", Mp::Array(vec![s("hero")])),
        ("atlas", s("characters")),
    ])
}

/// The hand-written atlas fixture (matches docs/formats.md).
pub fn fixture_dir() -> PathBuf {
    crate_dir().join("tests/fixtures/assets")
}

/// A headless app on `assets` with the bridge subscribed to `endpoint`, and the
/// fixture atlas loaded (with its pages) before it returns.
#[cfg(feature = "bridge")]
pub fn bridge_app_with_atlas(
    assets: &Path,
    endpoint: String,
    timeout: Duration,
) -> (App, Handle<bevy_sparky::prelude::SparkyAtlas>) {
    use bevy::asset::RecursiveDependencyLoadState;
    use bevy_sparky::prelude::*;

    let mut app = headless_app(assets);
    app.add_plugins(SparkyBridgePlugin {
        endpoint,
        assets_root: Some(assets.to_owned()),
        ..Default::default()
    });
    let atlas: Handle<SparkyAtlas> = app
        .world()
        .resource::<AssetServer>()
        .load("sprites/characters.atlas.ron");
    let id = atlas.id();
    pump_until(&mut app, timeout, "the atlas", |app| {
        matches!(
            app.world()
                .resource::<AssetServer>()
                .get_recursive_dependency_load_state(id),
            Some(RecursiveDependencyLoadState::Loaded)
        )
    });
    (app, atlas)
}
