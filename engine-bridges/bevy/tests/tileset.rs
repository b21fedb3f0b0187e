//! `SparkyTilesetLoader` on a tileset the Python pipeline builds: the asset loads with its
//! sheet and grid layout, `pick` agrees with the Python pick table for all 256 masks, and
//! `neighbour_mask` agrees with the Python mask of every cell of a random map.

mod common;

use std::process::Command;
use std::time::Duration;

use bevy::asset::RecursiveDependencyLoadState;
use bevy::image::TextureAtlasLayout;
use bevy::math::IVec2;
use bevy::prelude::*;
use bevy_sparky::tileset::parse_tileset_file;
use bevy_sparky::{SparkyTileset, TileValue, TilesetLoadError, neighbour_mask};
use common::*;
use serde_json::Value;

fn python_build(dir: &std::path::Path) -> Value {
    let python = std::env::var("SPARKY_PYTHON").unwrap_or_else(|_| "python3".into());
    let output = Command::new(&python)
        .arg(crate_dir().join("tests/tileset_with_python.py"))
        .arg(dir)
        .current_dir(repo_root())
        .env("PYTHONPATH", repo_root())
        .output()
        .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
    assert!(
        output.status.success(),
        "the Python build failed (set SPARKY_PYTHON to the venv python): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("one JSON line")
}

#[test]
fn loaded_tileset_picks_the_python_tile_for_every_mask() {
    let dir = tempfile::tempdir().unwrap();
    let reference = python_build(dir.path());
    let table: Vec<u32> = reference["table"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    assert_eq!(table.len(), 256);

    let mut app = headless_app(&dir.path().join("assets"));
    let handle: Handle<SparkyTileset> = app
        .world()
        .resource::<AssetServer>()
        .load("tiles/dungeon.tileset.ron");
    pump_until(&mut app, Duration::from_secs(20), "the tileset", |app| {
        let state = app
            .world()
            .resource::<AssetServer>()
            .get_recursive_dependency_load_state(&handle);
        assert!(
            !matches!(state, Some(RecursiveDependencyLoadState::Failed(_))),
            "{state:?}"
        );
        matches!(state, Some(RecursiveDependencyLoadState::Loaded))
    });
    let tilesets = app.world().resource::<Assets<SparkyTileset>>();
    let tileset = tilesets.get(&handle).unwrap();
    assert_eq!(
        (
            tileset.name.as_str(),
            tileset.terrain.as_str(),
            tileset.set.as_str()
        ),
        ("dungeon", "wall", "blob")
    );
    for mask in 0..=255u8 {
        assert_eq!(
            tileset.pick(mask),
            Some(table[mask as usize]),
            "mask {mask:08b}"
        );
    }
    assert_eq!(tileset.pick_corners(true, true, true, true), None);
    assert_eq!(tileset.tiles.len(), 47);
    assert_eq!(tileset.data(0, "solid"), Some(&TileValue::Bool(true)));
    let layouts = app.world().resource::<Assets<TextureAtlasLayout>>();
    let layout = layouts.get(&tileset.layout).unwrap();
    assert_eq!(layout.textures.len(), 48);
    assert_eq!(layout.textures[9].min, UVec2::new(8, 8));
    let images = app.world().resource::<Assets<Image>>();
    assert_eq!(
        images.get(&tileset.image).unwrap().size(),
        UVec2::new(64, 48)
    );

    let grid: Vec<Vec<bool>> = reference["grid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row.as_array().unwrap().iter().map(|v| v == 1).collect())
        .collect();
    let is_terrain = |cell: IVec2| {
        cell.y >= 0
            && cell.x >= 0
            && grid
                .get(cell.y as usize)
                .and_then(|row| row.get(cell.x as usize))
                .copied()
                .unwrap_or(false)
    };
    for (y, row) in reference["masks"].as_array().unwrap().iter().enumerate() {
        for (x, mask) in row.as_array().unwrap().iter().enumerate() {
            let ours = neighbour_mask(IVec2::new(x as i32, y as i32), is_terrain);
            assert_eq!(u64::from(ours), mask.as_u64().unwrap(), "cell ({x}, {y})");
        }
    }
}

#[test]
fn broken_tileset_files_name_the_field() {
    let good = "(format: 1, name: \"t\", image: \"t.png\", tile_size: 8, columns: 1, rows: 1, \
                terrain: \"t\", set: \"none\", table: [], tiles: [])";
    assert!(parse_tileset_file(good.as_bytes()).is_ok());
    let short = good.replace("set: \"none\"", "set: \"corners\"");
    let error = parse_tileset_file(short.as_bytes()).unwrap_err();
    assert!(matches!(error, TilesetLoadError::Invalid { ref field, .. } if field == "table"));
    assert!(
        error.to_string().contains("has 0 entries, expected 16"),
        "{error}"
    );
    let outside = good.replace(
        "tiles: []",
        "tiles: [(index: 3, name: \"x\", frames: [], fps: 0.0, collision: [], data: {})]",
    );
    assert!(
        parse_tileset_file(outside.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("outside the 1-tile sheet")
    );
    let escape = good.replace("\"t.png\"", "\"../t.png\"");
    assert!(matches!(
        parse_tileset_file(escape.as_bytes()).unwrap_err(),
        TilesetLoadError::Invalid { ref field, .. } if field == "image"
    ));
    let format = good.replace("format: 1", "format: 2");
    assert!(matches!(
        parse_tileset_file(format.as_bytes()).unwrap_err(),
        TilesetLoadError::Format { found: 2 }
    ));
}
