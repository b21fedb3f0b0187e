//! Tilesets: the `<name>.tileset.ron` loader ([`SparkyTilesetLoader`] → [`SparkyTileset`])
//! and the run-time autotile pick.
//!
//! A blob tileset's `table` maps each of the 256 8-neighbour masks to a tile index on the
//! sheet; [`neighbour_mask`] computes a cell's mask from any terrain predicate and
//! [`SparkyTileset::pick`] looks it up, so a game can autotile at run time (the index is
//! a `TextureAtlas` index into [`SparkyTileset::layout`], usable with Bevy's tilemap chunk
//! rendering). A corner tileset (a dual grid) is picked with
//! [`SparkyTileset::pick_corners`]. The format is in `docs/formats.md`; the table is the
//! one `sparky_assets.tiles.autotile` computes (tests/tileset.rs checks all 256 masks).

use std::collections::BTreeMap;
use std::path::Path;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, AssetPath, LoadContext};
use bevy::image::{Image, TextureAtlasLayout};
use bevy::math::{IVec2, UVec2};
use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::protocol::path_problem;

/// The only `format` value this loader reads.
pub const TILESET_FORMAT: u32 = 1;

/// Neighbour bits, clockwise from north (`y` grows downwards, as on the sheet).
pub const N: u8 = 1;
pub const NE: u8 = 2;
pub const E: u8 = 4;
pub const SE: u8 = 8;
pub const S: u8 = 16;
pub const SW: u8 = 32;
pub const W: u8 = 64;
pub const NW: u8 = 128;
/// (bit, offset) for every neighbour.
pub const NEIGHBOURS: [(u8, IVec2); 8] = [
    (N, IVec2::new(0, -1)),
    (NE, IVec2::new(1, -1)),
    (E, IVec2::new(1, 0)),
    (SE, IVec2::new(1, 1)),
    (S, IVec2::new(0, 1)),
    (SW, IVec2::new(-1, 1)),
    (W, IVec2::new(-1, 0)),
    (NW, IVec2::new(-1, -1)),
];

/// The 8-neighbour mask of `cell`: bit set where `is_terrain(neighbour)` (`y` down).
pub fn neighbour_mask(cell: IVec2, is_terrain: impl Fn(IVec2) -> bool) -> u8 {
    NEIGHBOURS
        .iter()
        .filter(|(_, offset)| is_terrain(cell + *offset))
        .fold(0, |mask, (bit, _)| mask | bit)
}

/// A custom data value of a tile.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TileValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
}

/// One tile as the file states it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TileFile {
    /// Cell index on the sheet (`row * columns + column`).
    pub index: u32,
    pub name: String,
    /// An animated tile's frame indices (empty when still).
    pub frames: Vec<u32>,
    pub fps: f32,
    /// Collision polygons in tile pixels, top-left origin.
    pub collision: Vec<Vec<(f32, f32)>>,
    pub data: BTreeMap<String, TileValue>,
}

/// One `.tileset.ron` file as written by the exporter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TilesetFile {
    pub format: u32,
    pub name: String,
    pub image: String,
    pub tile_size: u32,
    pub columns: u32,
    pub rows: u32,
    pub terrain: String,
    /// `blob`, `corners` or `none`.
    pub set: String,
    pub table: Vec<u32>,
    pub tiles: Vec<TileFile>,
}

/// Why a `.tileset.ron` file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TilesetLoadError {
    #[error("could not read tileset file: {0}")]
    Io(#[from] std::io::Error),
    #[error("tileset file is not valid RON for format {TILESET_FORMAT}: {0}")]
    Ron(#[from] ron::error::SpannedError),
    #[error("tileset file has format {found}; this loader reads format {TILESET_FORMAT}")]
    Format { found: u32 },
    #[error("tileset '{tileset}': {field} {problem}")]
    Invalid {
        tileset: String,
        field: String,
        problem: String,
    },
}

/// Parse and check a `.tileset.ron` file: format, image path, table size and every index
/// inside the sheet.
pub fn parse_tileset_file(bytes: &[u8]) -> Result<TilesetFile, TilesetLoadError> {
    let file: TilesetFile = ron::de::from_bytes(bytes)?;
    if file.format != TILESET_FORMAT {
        return Err(TilesetLoadError::Format { found: file.format });
    }
    let invalid = |field: &str, problem: String| TilesetLoadError::Invalid {
        tileset: file.name.clone(),
        field: field.into(),
        problem,
    };
    if let Some(problem) = path_problem(&file.image) {
        return Err(invalid("image", problem.to_string()));
    }
    let expected = match file.set.as_str() {
        "blob" => 256,
        "corners" => 16,
        "none" => 0,
        other => {
            return Err(invalid(
                "set",
                format!("is '{other}', not blob, corners or none"),
            ));
        }
    };
    if file.table.len() != expected {
        return Err(invalid(
            "table",
            format!("has {} entries, expected {expected}", file.table.len()),
        ));
    }
    let cells = file.columns * file.rows;
    let indices = file
        .table
        .iter()
        .chain(file.tiles.iter().map(|t| &t.index))
        .chain(file.tiles.iter().flat_map(|t| t.frames.iter()));
    for index in indices {
        if *index >= cells {
            return Err(invalid(
                "table",
                format!("names tile {index}, outside the {cells}-tile sheet"),
            ));
        }
    }
    Ok(file)
}

/// A loaded tileset: the sheet, its grid layout, the pick table and every tile.
#[derive(Asset, TypePath, Debug, Clone)]
pub struct SparkyTileset {
    pub name: String,
    pub terrain: String,
    pub tile_size: u32,
    #[dependency]
    pub image: Handle<Image>,
    /// One rect per sheet cell, row-major: a tile index is a `TextureAtlas` index.
    #[dependency]
    pub layout: Handle<TextureAtlasLayout>,
    /// `blob`, `corners` or `none`.
    pub set: String,
    pub table: Vec<u32>,
    /// Tiles by sheet index.
    pub tiles: BTreeMap<u32, TileFile>,
}

impl SparkyTileset {
    /// The blob tile for an 8-neighbour mask (see [`neighbour_mask`]); None unless a blob set.
    pub fn pick(&self, mask: u8) -> Option<u32> {
        (self.set == "blob").then(|| self.table[mask as usize])
    }

    /// The corner tile whose four corners are the cells meeting there; None unless a corner set.
    pub fn pick_corners(&self, nw: bool, ne: bool, sw: bool, se: bool) -> Option<u32> {
        let key = (usize::from(nw) << 3)
            | (usize::from(ne) << 2)
            | (usize::from(sw) << 1)
            | usize::from(se);
        (self.set == "corners").then(|| self.table[key])
    }

    /// A custom data value of the tile at `index`.
    pub fn data(&self, index: u32, key: &str) -> Option<&TileValue> {
        self.tiles.get(&index).and_then(|tile| tile.data.get(key))
    }
}

/// The grid layout of a sheet `columns` × `rows` tiles of `tile_size` pixels.
pub fn grid_layout(file: &TilesetFile) -> TextureAtlasLayout {
    TextureAtlasLayout::from_grid(
        UVec2::splat(file.tile_size),
        file.columns,
        file.rows,
        None,
        None,
    )
}

/// Loads `*.tileset.ron` files written by `sparky-assets build` into [`SparkyTileset`].
#[derive(Default, TypePath)]
pub struct SparkyTilesetLoader;

impl AssetLoader for SparkyTilesetLoader {
    type Asset = SparkyTileset;
    type Settings = ();
    type Error = TilesetLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        _settings: &Self::Settings,
        load_context: &mut LoadContext<'_>,
    ) -> Result<Self::Asset, Self::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        let file = parse_tileset_file(&bytes)?;
        let image_path = load_context
            .path()
            .clone()
            .resolve_embed(&AssetPath::from_path(Path::new(&file.image)));
        let image = load_context.load::<Image>(image_path);
        let layout = load_context.add_labeled_asset("layout".to_string(), grid_layout(&file));
        Ok(SparkyTileset {
            name: file.name,
            terrain: file.terrain,
            tile_size: file.tile_size,
            image,
            layout,
            set: file.set,
            table: file.table,
            tiles: file
                .tiles
                .into_iter()
                .map(|tile| (tile.index, tile))
                .collect(),
        })
    }

    fn extensions(&self) -> &[&str] {
        &["tileset.ron"]
    }
}
