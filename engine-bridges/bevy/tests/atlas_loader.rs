//! `SparkyAtlasLoader` against real exporter output: layouts equal the file's rects,
//! pages load as images relative to the atlas, reloads update the asset, broken files
//! fail with the field named.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bevy::asset::{LoadState, RecursiveDependencyLoadState};
use bevy::image::TextureAtlasLayout;
use bevy::math::{URect, UVec2};
use bevy::prelude::*;
use bevy_sparky::atlas::parse_atlas_file;
use bevy_sparky::{AtlasLoadError, SparkyAtlas};
use common::*;

const LOAD_TIMEOUT: Duration = Duration::from_secs(20);

/// One page as read straight from the RON text (not through the crate's own types).
#[derive(Debug, PartialEq)]
struct RawPage {
    image: String,
    size: UVec2,
    rects: Vec<URect>,
}

fn field<'a>(value: &'a ron::Value, name: &str) -> &'a ron::Value {
    let ron::Value::Map(map) = value else {
        panic!("expected a struct, found {value:?}")
    };
    map.get(&ron::Value::String(name.to_owned()))
        .unwrap_or_else(|| panic!("field {name} missing"))
}

fn uvec2(value: &ron::Value) -> UVec2 {
    let ron::Value::Seq(items) = value else {
        panic!("expected a tuple, found {value:?}")
    };
    let number = |item: &ron::Value| match item {
        ron::Value::Number(number) => number.into_f64() as u32,
        other => panic!("expected a number, found {other:?}"),
    };
    UVec2::new(number(&items[0]), number(&items[1]))
}

/// The pages of an `.atlas.ron` file, read with RON's generic value model.
fn raw_pages(path: &Path) -> Vec<RawPage> {
    let text = std::fs::read_to_string(path).unwrap();
    let value: ron::Value = ron::from_str(&text).unwrap();
    let ron::Value::Seq(pages) = field(&value, "pages") else {
        panic!("pages is not a list")
    };
    pages
        .iter()
        .map(|page| {
            let ron::Value::Seq(rects) = field(page, "rects") else {
                panic!("rects is not a list")
            };
            RawPage {
                image: match field(page, "image") {
                    ron::Value::String(image) => image.clone(),
                    other => panic!("image is {other:?}"),
                },
                size: uvec2(field(page, "size")),
                rects: rects
                    .iter()
                    .map(|rect| {
                        URect::from_corners(uvec2(field(rect, "min")), uvec2(field(rect, "max")))
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Build `examples/dungeon` with the current Python exporter in a temp copy (without
/// its build cache and previous outputs) and return (temp dir, the `.atlas.ron` files
/// the build wrote).
fn exported_atlases() -> (tempfile::TempDir, Vec<PathBuf>) {
    let temp = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/dungeon");
    assert!(
        example.join("sparky.toml").exists(),
        "{} is missing",
        example.display()
    );
    let project = temp.path().join("dungeon");
    copy_tree(&example, &project);
    let _ = std::fs::remove_dir_all(project.join("build"));
    let mut stale = Vec::new();
    find_atlases(&project, &mut stale);
    for file in stale {
        std::fs::remove_file(file).unwrap();
    }

    let python = std::env::var("SPARKY_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .args(["-m", "sparky_assets", "build"])
        .arg(&project)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "{python} -m sparky_assets build failed (set SPARKY_PYTHON to the project's venv python):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let mut found = Vec::new();
    find_atlases(temp.path(), &mut found);
    found.sort();
    assert!(
        !found.is_empty(),
        "the build wrote no .atlas.ron file under {}",
        temp.path().display()
    );
    (temp, found)
}

fn find_atlases(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            find_atlases(&path, found);
        } else if path.to_string_lossy().ends_with(".atlas.ron") {
            found.push(path);
        }
    }
}

/// Load `file_name` from `assets` and wait until it and its pages are loaded.
fn load_atlas(app: &mut App, file_name: &str) -> Handle<SparkyAtlas> {
    let handle: Handle<SparkyAtlas> = app
        .world()
        .resource::<AssetServer>()
        .load(file_name.to_owned());
    let id = handle.id();
    pump_until(
        app,
        LOAD_TIMEOUT,
        "the atlas and its pages to load",
        |app| {
            let server = app.world().resource::<AssetServer>();
            if let Some(LoadState::Failed(error)) = server.get_load_state(id) {
                panic!("atlas failed to load: {error}");
            }
            matches!(
                server.get_recursive_dependency_load_state(id),
                Some(RecursiveDependencyLoadState::Loaded)
            )
        },
    );
    handle
}

#[test]
fn loads_the_python_exporters_atlas_with_layout_rects_exactly_as_in_the_file() {
    let (_temp, atlases) = exported_atlases();
    for atlas_path in atlases {
        let folder = atlas_path.parent().unwrap();
        let file_name = atlas_path.file_name().unwrap().to_str().unwrap();
        let expected = raw_pages(&atlas_path);
        assert!(
            !expected.is_empty(),
            "{} has no pages",
            atlas_path.display()
        );

        let mut app = headless_app(folder);
        let handle = load_atlas(&mut app, file_name);
        let world = app.world();
        let atlas = world
            .resource::<Assets<SparkyAtlas>>()
            .get(&handle)
            .unwrap();
        let layouts = world.resource::<Assets<TextureAtlasLayout>>();
        let images = world.resource::<Assets<Image>>();
        let server = world.resource::<AssetServer>();

        assert_eq!(atlas.pages.len(), expected.len());
        assert_eq!(atlas.layouts.len(), expected.len());
        for (number, page) in expected.iter().enumerate() {
            let layout = layouts.get(&atlas.layouts[number]).unwrap();
            assert_eq!(layout.size, page.size, "page {number} size");
            assert_eq!(
                layout.textures, page.rects,
                "page {number} rects of {file_name}"
            );
            let image = images.get(&atlas.pages[number]).expect("page image loaded");
            assert_eq!(
                image.size(),
                page.size,
                "page {number} PNG size equals the file's size"
            );
            let image_path = server.get_path(atlas.pages[number].id()).unwrap();
            assert_eq!(
                image_path.path(),
                Path::new(&page.image),
                "page image is relative to the atlas folder"
            );
        }
        for frame in &atlas.frames {
            assert_eq!(frame.rect, expected[frame.page].rects[frame.index]);
        }
        assert!(!atlas.sprites.is_empty());
    }
}

#[test]
fn page_images_resolve_relative_to_the_atlas_files_folder() {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let mut app = headless_app(temp.path());
    let handle = load_atlas(&mut app, "sprites/characters.atlas.ron");
    let world = app.world();
    let atlas = world
        .resource::<Assets<SparkyAtlas>>()
        .get(&handle)
        .unwrap();
    let server = world.resource::<AssetServer>();
    let page_path = server.get_path(atlas.pages[1].id()).unwrap();
    assert_eq!(page_path.path(), Path::new("sprites/characters_1.png"));
    let layout_path = server.get_path(atlas.layouts[1].id()).unwrap();
    assert_eq!(layout_path.label(), Some("page1"));
}

#[test]
fn reloading_the_file_updates_the_atlas_and_its_layouts() {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let mut app = headless_app(temp.path());
    let path = "sprites/characters.atlas.ron";
    let handle = load_atlas(&mut app, path);

    let file = temp.path().join(path);
    let text = std::fs::read_to_string(&file).unwrap();
    let changed = text.replace(
        "(min: (48, 0), max: (62, 13))",
        "(min: (40, 16), max: (64, 32))",
    );
    assert_ne!(text, changed);
    std::fs::write(&file, changed).unwrap();
    app.world().resource::<AssetServer>().reload(path);

    pump_until(&mut app, LOAD_TIMEOUT, "the reloaded layout", |app| {
        let world = app.world();
        let Some(atlas) = world.resource::<Assets<SparkyAtlas>>().get(&handle) else {
            return false;
        };
        let layouts = world.resource::<Assets<TextureAtlasLayout>>();
        layouts
            .get(&atlas.layouts[0])
            .is_some_and(|layout| layout.textures[3] == URect::new(40, 16, 64, 32))
            && atlas.frames[5].rect == URect::new(40, 16, 64, 32)
    });
}

#[test]
fn a_broken_atlas_fails_to_load_and_names_the_field() {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let file = temp.path().join("sprites/characters.atlas.ron");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("page: 1, index: 1,", "page: 1, index: 9,"),
    )
    .unwrap();
    let mut app = headless_app(temp.path());
    let handle: Handle<SparkyAtlas> = app
        .world()
        .resource::<AssetServer>()
        .load("sprites/characters.atlas.ron");
    let id = handle.id();
    let mut message = String::new();
    pump_until(&mut app, LOAD_TIMEOUT, "the load to fail", |app| match app
        .world()
        .resource::<AssetServer>()
        .get_load_state(id)
    {
        Some(LoadState::Failed(error)) => {
            message = error.to_string();
            true
        }
        Some(LoadState::Loaded) => panic!("a broken atlas loaded"),
        _ => false,
    });
    assert!(message.contains("frames[1].index"), "{message}");
}

#[test]
fn parse_refuses_what_the_format_forbids() {
    let good = std::fs::read_to_string(fixture_dir().join("sprites/characters.atlas.ron")).unwrap();
    assert!(parse_atlas_file(good.as_bytes()).is_ok());
    let cases = [
        ("format: 1,", "format: 2,", "format 2"),
        (
            "\"characters_0.png\"",
            "\"../secret.png\"",
            "'..' component",
        ),
        ("\"characters_0.png\"", "\"/etc/passwd.png\"", "absolute"),
        ("\"characters_0.png\"", "\"c:/x.png\"", "':'"),
        ("\"characters_0.png\"", "\"x.png#lbl\"", "'#'"),
        (
            "(min: (16, 0), max: (32, 16)),\n            ],",
            "(min: (16, 0), max: (33, 16)),\n            ],",
            "inside",
        ),
        (
            "frames: [0, 1], fps: 10.0",
            "frames: [0, 99], fps: 10.0",
            "refers to frame 99",
        ),
        ("fps: 8.0", "fps: 0.0", "positive"),
        ("frames: [0, 1], fps", "frames: [], fps", "is empty"),
        ("page: 1, index: 0,", "page: 5, index: 0,", "frames[0].page"),
        (
            "durations: [100.0, 200.0, 300.0]",
            "durations: [100.0, 200.0]",
            "has 2 entries for 3 frames",
        ),
        (
            "durations: [100.0, 200.0, 300.0]",
            "durations: [100.0, 0.0, 300.0]",
            "positive milliseconds",
        ),
        (
            "pivot: Some((8.0, 16.0))",
            "pivot: Some((8.0, 17.0))",
            "outside the 16x16 frame",
        ),
        (
            "center: Some((4, 4, 8, 8))",
            "center: Some((4, 4, 13, 8))",
            "not inside the 16x16 frame",
        ),
        (
            "playback: \"pingpong\"",
            "playback: \"bounce\"",
            "expected forward, reverse, pingpong or pingpong_reverse",
        ),
    ];
    for (from, to, expected) in cases {
        let broken = good.replacen(from, to, 1);
        assert_ne!(broken, good, "case {from:?} did not apply");
        let error = parse_atlas_file(broken.as_bytes()).expect_err(to);
        let text = error.to_string();
        assert!(text.contains(expected), "{to}: {text}");
        if expected == "format 2" {
            assert!(matches!(error, AtlasLoadError::Format { found: 2 }));
        }
    }
    assert!(matches!(
        parse_atlas_file(b"(format: 1"),
        Err(AtlasLoadError::Ron(_))
    ));
}

/// The fixture's hero turned into a sprite with four facings: clips `walk_<facing>`
/// carrying their animation and facing, as the exporter writes for `directions = 4`.
fn directional_fixture() -> String {
    let good = std::fs::read_to_string(fixture_dir().join("sprites/characters.atlas.ron")).unwrap();
    let clips = "            clips: {\n                \"attack\": (frames: [0, 1], fps: 10.0, looping: false, repeat: 2),\n                \"idle\": (frames: [2, 3, 4, 5, 6], fps: 8.0, looping: true),\n                \"wave\": (frames: [2, 3, 4], fps: 8.0, looping: true, durations: [100.0, 200.0, 300.0], playback: \"pingpong\", pivot: Some((8.0, 16.0))),\n            },";
    assert!(good.contains(clips), "fixture changed");
    let directional = "            directions: [\"n\", \"e\", \"s\", \"w\"],\n            clips: {\n                \"walk_e\": (frames: [2, 3], fps: 8.0, looping: true, animation: \"walk\", direction: \"e\"),\n                \"walk_n\": (frames: [0, 1], fps: 8.0, looping: true, animation: \"walk\", direction: \"n\"),\n                \"walk_s\": (frames: [4], fps: 8.0, looping: true, animation: \"walk\", direction: \"s\"),\n                \"walk_w\": (frames: [5, 6], fps: 8.0, looping: true, animation: \"walk\", direction: \"w\"),\n            },";
    good.replacen(clips, directional, 1)
}

#[test]
fn directional_clips_load_with_their_facings() {
    let file =
        parse_atlas_file(directional_fixture().as_bytes()).expect("directional atlas parses");
    let hero = &file.sprites["hero"];
    assert_eq!(hero.directions, ["n", "e", "s", "w"]);
    assert_eq!(hero.clips["walk_w"].direction, "w");
    assert_eq!(hero.clips["walk_w"].animation, "walk");
    // A sprite without directions has none, and its clips no facing.
    assert!(file.sprites["torch"].directions.is_empty());

    let mut app = headless_app(&fixture_dir());
    let handle = load_atlas(&mut app, "sprites/characters.atlas.ron");
    let atlases = app.world().resource::<Assets<SparkyAtlas>>();
    let plain = atlases.get(&handle).unwrap();
    assert!(plain.sprite("hero").unwrap().directions.is_empty());
    assert_eq!(plain.sprite("hero").unwrap().facing_for(Vec2::X), None);

    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    std::fs::write(
        temp.path().join("sprites/characters.atlas.ron"),
        directional_fixture(),
    )
    .unwrap();
    let mut app = headless_app(temp.path());
    let handle = load_atlas(&mut app, "sprites/characters.atlas.ron");
    let atlases = app.world().resource::<Assets<SparkyAtlas>>();
    let hero = atlases.get(&handle).unwrap().sprite("hero").unwrap();
    assert_eq!(hero.directions, ["n", "e", "s", "w"]);
    assert_eq!(hero.facing_for(Vec2::new(1.0, 0.2)), Some("e"));
    assert_eq!(hero.facing_for(Vec2::new(-0.1, -3.0)), Some("s"));
    assert_eq!(hero.facing_for(Vec2::new(-1.0, 0.9)), Some("w"));
    assert_eq!(hero.facing_for(Vec2::ZERO), None);
    let (name, clip) = hero.facing_clip("walk", "n").unwrap();
    assert_eq!(name, "walk_n");
    assert_eq!(clip.frames.len(), 2);
    assert!(hero.facing_clip("walk", "ne").is_none());
}

#[test]
fn directional_fields_are_checked() {
    let good = directional_fixture();
    for (from, to, expected) in [
        (
            "direction: \"w\")",
            "direction: \"q\")",
            "not one of the sprite's directions",
        ),
        (
            "[\"n\", \"e\", \"s\", \"w\"]",
            "[\"n\", \"e\", \"s\", \"up\"]",
            "facings are n, ne",
        ),
    ] {
        let broken = good.replacen(from, to, 1);
        assert_ne!(broken, good, "case {from:?} did not apply");
        let text = parse_atlas_file(broken.as_bytes())
            .expect_err(to)
            .to_string();
        assert!(text.contains(expected), "{to}: {text}");
    }
}
