//! Run-time autotiling with a sparky-assets tileset, headless: loads the example game's
//! `sprites/dungeon.tileset.ron` (built from `examples/dungeon/art/dungeon_walls.png`),
//! picks each wall cell's blob tile from its neighbour mask, prints the room as tile
//! indices and exits. A game spawns one `Sprite` (or a tilemap chunk) per cell with
//! `TextureAtlas { layout: tileset.layout.clone(), index }` and `tileset.image`.
//!
//! ```text
//! sparky-assets build examples/dungeon
//! cargo run --example tilemap -- [ASSETS_DIR]
//! ```
//! Default ASSETS_DIR: `examples/dungeon/bevy-game/assets`.

use bevy::asset::{AssetPlugin, RecursiveDependencyLoadState};
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::math::IVec2;
use bevy::prelude::*;
use bevy_sparky::prelude::*;

const ROOM: [&str; 7] = [
    "##########",
    "#........#",
    "#..##....#",
    "#..##..###",
    "#......#.#",
    "#~~....#.#",
    "##########",
];

#[derive(Resource)]
struct Room(Handle<SparkyTileset>);

fn main() -> AppExit {
    let assets = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/dungeon/bevy-game/assets"
        )
        .to_owned()
    });
    App::new()
        .add_plugins((
            MinimalPlugins,
            AssetPlugin {
                file_path: assets,
                ..Default::default()
            },
            ImagePlugin::default(),
        ))
        // No renderer: register the PNG loader ourselves.
        .register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()))
        .add_plugins(bevy_sparky::SparkyPlugin)
        .add_systems(
            Startup,
            |mut commands: Commands, server: Res<AssetServer>| {
                commands.insert_resource(Room(server.load("sprites/dungeon.tileset.ron")));
            },
        )
        .add_systems(Update, print_room)
        .run()
}

fn tile_named(tileset: &SparkyTileset, name: &str) -> u32 {
    tileset
        .tiles
        .values()
        .find(|tile| tile.name == name)
        .map_or(0, |tile| tile.index)
}

fn print_room(
    room: Res<Room>,
    server: Res<AssetServer>,
    tilesets: Res<Assets<SparkyTileset>>,
    mut exit: MessageWriter<AppExit>,
) {
    match server.get_recursive_dependency_load_state(&room.0) {
        Some(RecursiveDependencyLoadState::Loaded) => {}
        Some(RecursiveDependencyLoadState::Failed(error)) => {
            error!("tileset failed to load: {error}");
            exit.write(AppExit::error());
            return;
        }
        _ => return,
    }
    let Some(tileset) = tilesets.get(&room.0) else {
        return;
    };
    let is_wall = |cell: IVec2| {
        cell.x >= 0
            && cell.y >= 0
            && ROOM
                .get(cell.y as usize)
                .and_then(|row| row.as_bytes().get(cell.x as usize))
                == Some(&b'#')
    };
    let (floor, lava) = (tile_named(tileset, "floor"), tile_named(tileset, "lava"));
    for (y, row) in ROOM.iter().enumerate() {
        let indices: Vec<String> = row
            .bytes()
            .enumerate()
            .map(|(x, kind)| {
                let cell = IVec2::new(x as i32, y as i32);
                let index = match kind {
                    b'#' => tileset.pick(neighbour_mask(cell, is_wall)).unwrap_or(0),
                    b'~' => lava,
                    _ => floor,
                };
                format!("{index:>2}")
            })
            .collect();
        println!("{}", indices.join(" "));
    }
    exit.write(AppExit::Success);
}
