//! The `.atlas.ron` format (written by the Python Bevy exporter) and its asset loader.
//!
//! The file format is specified in `docs/formats.md` ("Bevy: `<atlas>.atlas.ron`");
//! [`AtlasFile`] mirrors it field for field. [`SparkyAtlasLoader`] turns one file into a
//! [`SparkyAtlas`]: one `Handle<Image>` per page (loaded as dependencies, relative to
//! the atlas file's folder) and one labeled `TextureAtlasLayout` per page
//! (`<file>#page<N>`) whose `textures` are the page's rects in file order, unchanged.
//!
//! Invariants: a loaded [`SparkyAtlas`] is internally consistent — every frame points
//! at an existing page and rect, every sprite/clip frame index points at an existing
//! frame, every clip has at least one frame, a positive finite fps and one positive
//! duration per frame (and a non-empty play cycle), every rect lies
//! inside its page — so the animation system can index without checks. A file that
//! breaks any of this fails to load with an [`AtlasLoadError`] naming the field.

use std::collections::BTreeMap;
use std::path::Path;

use bevy::asset::io::Reader;
use bevy::asset::{AssetLoader, AssetPath, LoadContext};
use bevy::image::{Image, TextureAtlasLayout};
use bevy::math::{URect, UVec2};
use bevy::prelude::*;
use serde::{Deserialize, Serialize};

use crate::protocol::path_problem;

/// The only `format` value this loader reads.
pub const ATLAS_FORMAT: u32 = 1;

// ------------------------------------------------------------------------ file format

/// One `.atlas.ron` file as written by the exporter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtlasFile {
    pub format: u32,
    pub name: String,
    pub pages: Vec<PageFile>,
    pub frames: Vec<FrameFile>,
    pub sprites: BTreeMap<String, SpriteFile>,
}

/// One page: its image (relative to the atlas file's folder), size and rects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PageFile {
    pub image: String,
    pub size: (u32, u32),
    pub rects: Vec<RectFile>,
}

/// A `URect`: `min` inclusive, `max` exclusive, pixels, origin top-left.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RectFile {
    pub min: (u32, u32),
    pub max: (u32, u32),
}

/// One (sprite, animation, frame); its pixels are `pages[page].rects[index]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FrameFile {
    pub sprite: String,
    pub animation: String,
    pub frame: u32,
    pub page: u32,
    pub index: u32,
    pub offset: (u32, u32),
    pub source_size: (u32, u32),
}

/// A sprite: its untrimmed size, all its frames, its facings, its clips.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpriteFile {
    pub size: (u32, u32),
    pub frames: Vec<u32>,
    /// Facings of a sprite with `directions` (`["n", "e", "s", "w"]`), else absent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directions: Vec<String>,
    /// The frames' origin in frame pixels (x right, y down); absent: the centre.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<(f32, f32)>,
    /// Named regions and points (hitboxes, weapon points, 9-slices) in frame pixels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub slices: BTreeMap<String, SliceFile>,
    #[serde(default)]
    pub clips: BTreeMap<String, ClipFile>,
}

/// A named region of a sprite's frames: `rect` is `(x, y, w, h)` in frame pixels;
/// `center` (the 9-slice stretching part) and `pivot` are relative to `rect`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SliceFile {
    pub rect: (u32, u32, u32, u32),
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub center: Option<(u32, u32, u32, u32)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<(i32, i32)>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub data: String,
}

/// An animation clip: indices into `frames`, playback rate, looping; for a sprite
/// with directions also the animation it belongs to and its facing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClipFile {
    pub frames: Vec<u32>,
    pub fps: f32,
    pub looping: bool,
    /// The animation of a directional clip (`"walk"` for `"walk_ne"`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub animation: String,
    /// The facing of a directional clip (`"ne"`); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub direction: String,
    /// Per-frame durations in milliseconds, one per entry of `frames`; absent: `1000 / fps` each.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub durations: Vec<f32>,
    /// The order the frames play in: `"forward"` (or absent), `"reverse"`, `"pingpong"`,
    /// `"pingpong_reverse"`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub playback: String,
    /// This clip's own pivot in frame pixels (overrides the sprite's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pivot: Option<(f32, f32)>,
    /// Times the clip plays before it stops (`looping` is then false); absent or 0: as
    /// `looping` says.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub repeat: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

/// The order a clip's frames play in, named as Aseprite names its tag directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Reflect)]
pub enum Playback {
    /// First to last.
    #[default]
    Forward,
    /// Last to first.
    Reverse,
    /// First to last and back, the end frames shown once per pass (`a b c b`).
    Pingpong,
    /// Last to first and back (`c b a b`).
    PingpongReverse,
}

impl Playback {
    /// The playback a file names (`""` is forward), or `None` for an unknown name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "" | "forward" => Some(Playback::Forward),
            "reverse" => Some(Playback::Reverse),
            "pingpong" => Some(Playback::Pingpong),
            "pingpong_reverse" => Some(Playback::PingpongReverse),
            _ => None,
        }
    }

    /// Positions in a clip of `len` frames in the order one cycle plays them.
    pub fn cycle(self, len: usize) -> Vec<usize> {
        let forward: Vec<usize> = (0..len).collect();
        let backward: Vec<usize> = (0..len).rev().collect();
        let inner = |v: &[usize]| v.get(1..v.len().saturating_sub(1)).unwrap_or(&[]).to_vec();
        match self {
            Playback::Forward => forward,
            Playback::Reverse => backward,
            Playback::Pingpong => [forward, inner(&backward)].concat(),
            Playback::PingpongReverse => [backward, inner(&(0..len).collect::<Vec<_>>())].concat(),
        }
    }
}

// ------------------------------------------------------------------------ asset

/// A loaded sprite atlas: page images, one layout per page, frames, sprites and clips.
#[derive(Asset, TypePath, Debug, Clone)]
pub struct SparkyAtlas {
    /// The atlas name from the file.
    pub name: String,
    /// One image per page, in page order.
    #[dependency]
    pub pages: Vec<Handle<Image>>,
    /// One layout per page: `layouts[p].textures == pages[p].rects` of the file.
    #[dependency]
    pub layouts: Vec<Handle<TextureAtlasLayout>>,
    /// Page sizes in pixels, in page order.
    pub page_sizes: Vec<UVec2>,
    /// Every (sprite, animation, frame); several may share a rect.
    pub frames: Vec<AtlasFrame>,
    /// Sprites by name.
    pub sprites: BTreeMap<String, AtlasSprite>,
}

/// One frame of one sprite's animation.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasFrame {
    pub sprite: String,
    pub animation: String,
    pub frame: u32,
    /// Page number (index into [`SparkyAtlas::pages`] and [`SparkyAtlas::layouts`]).
    pub page: usize,
    /// Rect index in that page's layout (the `TextureAtlas` index).
    pub index: usize,
    /// The rect in page pixels.
    pub rect: URect,
    /// Pixels trimmed left/top of the rect.
    pub offset: UVec2,
    /// Untrimmed frame size.
    pub source_size: UVec2,
}

/// One sprite: its size, all its frames in order, its facings, its clips.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasSprite {
    pub size: UVec2,
    /// Indices into [`SparkyAtlas::frames`].
    pub frames: Vec<usize>,
    /// Facings (`"n"`, `"ne"`, … clockwise from north) of a sprite made with
    /// `directions`; empty otherwise.
    pub directions: Vec<String>,
    /// The frames' origin in frame pixels (x right, y down): the file's `pivot`, else the centre.
    pub pivot: Vec2,
    /// Named regions and points in frame pixels, as data (hitboxes, weapon points, 9-slices).
    pub slices: BTreeMap<String, AtlasSlice>,
    pub clips: BTreeMap<String, AtlasClip>,
}

/// A named region of a sprite's frames, in frame pixels (x right, y down).
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasSlice {
    pub rect: URect,
    /// The 9-slice centre, in frame pixels (inside `rect`).
    pub center: Option<URect>,
    /// The slice's pivot in frame pixels.
    pub pivot: Option<IVec2>,
    /// User data text.
    pub data: String,
}

impl AtlasSlice {
    /// 9-slice borders `(left, top, right, bottom)` inside `rect`, as Bevy's
    /// `TextureSlicer`/`BorderRect` take them, or `None` without a centre.
    pub fn borders(&self) -> Option<(u32, u32, u32, u32)> {
        self.center.map(|c| {
            (
                c.min.x - self.rect.min.x,
                c.min.y - self.rect.min.y,
                self.rect.max.x - c.max.x,
                self.rect.max.y - c.max.y,
            )
        })
    }
}

/// An animation clip of one sprite.
#[derive(Debug, Clone, PartialEq)]
pub struct AtlasClip {
    /// Indices into [`SparkyAtlas::frames`]; never empty.
    pub frames: Vec<usize>,
    /// Frames per second; positive and finite.
    pub fps: f32,
    pub looping: bool,
    /// For a sprite with directions: the animation (`"walk"` for clip `"walk_ne"`).
    pub animation: Option<String>,
    /// For a sprite with directions: the clip's facing (`"ne"`).
    pub direction: Option<String>,
    /// Seconds each entry of `frames` shows for (at speed 1.0); positive, one per frame.
    pub durations: Vec<f32>,
    /// The order the frames play in.
    pub playback: Playback,
    /// Positions in `frames` in play order for one cycle (`playback` applied); never empty.
    pub cycle: Vec<usize>,
    /// This clip's own pivot in frame pixels; `None`: the sprite's.
    pub pivot: Option<Vec2>,
    /// Times a non-looping clip plays before it stops (0 or 1: once).
    pub repeat: u32,
}

impl AtlasClip {
    /// The index into [`SparkyAtlas::frames`] shown `seconds` after the clip started
    /// (speed 1.0), following durations, playback and `repeat`; a one-shot clip holds its
    /// last step.
    pub fn frame_at(&self, seconds: f32) -> usize {
        let cycle_time: f32 = self.cycle.iter().map(|&k| self.durations[k]).sum();
        let played = cycle_time * self.repeat.max(1) as f32;
        let mut t = if cycle_time > 0.0 && (self.looping || seconds < played) {
            seconds.rem_euclid(cycle_time)
        } else {
            seconds
        };
        for &k in &self.cycle {
            if t < self.durations[k] {
                return self.frames[k];
            }
            t -= self.durations[k];
        }
        self.frames[*self.cycle.last().expect("cycle is never empty")]
    }
}

/// Compass bearing in degrees (clockwise from north = screen up) of each facing name.
fn facing_degrees(facing: &str) -> Option<f32> {
    Some(match facing {
        "n" => 0.0,
        "ne" => 45.0,
        "e" => 90.0,
        "se" => 135.0,
        "s" => 180.0,
        "sw" => 225.0,
        "w" => 270.0,
        "nw" => 315.0,
        _ => return None,
    })
}

impl AtlasSprite {
    /// The sprite's facing closest to a movement `heading` (x right, y up, like Bevy
    /// world space); `None` for a sprite without directions or a zero heading.
    pub fn facing_for(&self, heading: Vec2) -> Option<&str> {
        if heading.length_squared() == 0.0 || !heading.is_finite() {
            return None;
        }
        let bearing = heading.x.atan2(heading.y).to_degrees().rem_euclid(360.0);
        self.directions
            .iter()
            .filter_map(|facing| facing_degrees(facing).map(|degrees| (facing, degrees)))
            .min_by(|(_, a), (_, b)| {
                let gap = |d: f32| {
                    (d - bearing)
                        .rem_euclid(360.0)
                        .min((bearing - d).rem_euclid(360.0))
                };
                gap(*a).total_cmp(&gap(*b))
            })
            .map(|(facing, _)| facing.as_str())
    }

    /// The clip of `animation` seen from `facing` (`("walk", "ne")` → clip `"walk_ne"`).
    pub fn facing_clip(&self, animation: &str, facing: &str) -> Option<(&str, &AtlasClip)> {
        self.clips
            .iter()
            .find(|(_, clip)| {
                clip.animation.as_deref() == Some(animation)
                    && clip.direction.as_deref() == Some(facing)
            })
            .map(|(name, clip)| (name.as_str(), clip))
    }
}

impl SparkyAtlas {
    /// The sprite named `name`, if the atlas has it.
    pub fn sprite(&self, name: &str) -> Option<&AtlasSprite> {
        self.sprites.get(name)
    }

    /// The clip `clip` of sprite `sprite`, if both exist.
    pub fn clip(&self, sprite: &str, clip: &str) -> Option<&AtlasClip> {
        self.sprites.get(sprite)?.clips.get(clip)
    }
}

// ------------------------------------------------------------------------ loader

/// Settings of [`SparkyAtlasLoader`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SparkyAtlasLoaderSettings {
    /// Build the asset without loading the page images (`pages` stay default handles).
    /// For tools that only need the layout; games leave this off.
    pub skip_images: bool,
}

/// Why an `.atlas.ron` file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum AtlasLoadError {
    #[error("could not read atlas file: {0}")]
    Io(#[from] std::io::Error),
    #[error("atlas file is not valid RON for format {ATLAS_FORMAT}: {0}")]
    Ron(#[from] ron::error::SpannedError),
    #[error("atlas file has format {found}; this loader reads format {ATLAS_FORMAT}")]
    Format { found: u32 },
    #[error("atlas '{atlas}': {field} {problem}")]
    Invalid {
        atlas: String,
        field: String,
        problem: String,
    },
}

/// Loads `*.atlas.ron` files written by `sparky-assets build` into [`SparkyAtlas`].
#[derive(Default, TypePath)]
pub struct SparkyAtlasLoader;

impl AssetLoader for SparkyAtlasLoader {
    type Asset = SparkyAtlas;
    type Settings = SparkyAtlasLoaderSettings;
    type Error = AtlasLoadError;

    async fn load(
        &self,
        reader: &mut dyn Reader,
        settings: &Self::Settings,
        load_context: &mut LoadContext<'_>,
    ) -> Result<Self::Asset, Self::Error> {
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).await?;
        let file = parse_atlas_file(&bytes)?;
        let atlas_path = load_context.path().clone();

        let mut pages = Vec::with_capacity(file.pages.len());
        let mut layouts = Vec::with_capacity(file.pages.len());
        for (number, page) in file.pages.iter().enumerate() {
            if !settings.skip_images {
                let image_path =
                    atlas_path.resolve_embed(&AssetPath::from_path(Path::new(&page.image)));
                pages.push(load_context.load::<Image>(image_path));
            } else {
                pages.push(Handle::default());
            }
            layouts
                .push(load_context.add_labeled_asset(format!("page{number}"), page_layout(page)));
        }
        Ok(build_atlas(file, pages, layouts))
    }

    fn extensions(&self) -> &[&str] {
        &["atlas.ron"]
    }
}

/// The `TextureAtlasLayout` of one page: its size and its rects in file order.
pub fn page_layout(page: &PageFile) -> TextureAtlasLayout {
    TextureAtlasLayout {
        size: UVec2::new(page.size.0, page.size.1),
        textures: page.rects.iter().map(|rect| rect_of(*rect)).collect(),
    }
}

fn rect_of(rect: RectFile) -> URect {
    URect {
        min: UVec2::new(rect.min.0, rect.min.1),
        max: UVec2::new(rect.max.0, rect.max.1),
    }
}

/// Parse and check one `.atlas.ron` file (no Bevy needed).
pub fn parse_atlas_file(bytes: &[u8]) -> Result<AtlasFile, AtlasLoadError> {
    let file: AtlasFile = ron::de::from_bytes(bytes)?;
    if file.format != ATLAS_FORMAT {
        return Err(AtlasLoadError::Format { found: file.format });
    }
    check_atlas_file(&file)?;
    Ok(file)
}

fn check_atlas_file(file: &AtlasFile) -> Result<(), AtlasLoadError> {
    let invalid = |field: String, problem: String| AtlasLoadError::Invalid {
        atlas: file.name.clone(),
        field,
        problem,
    };
    for (number, page) in file.pages.iter().enumerate() {
        if let Some(problem) = path_problem(&page.image) {
            return Err(invalid(format!("pages[{number}].image"), problem.into()));
        }
        if page.image.contains('#') {
            return Err(invalid(
                format!("pages[{number}].image"),
                "contains '#' (Bevy reads it as a sub-asset label)".into(),
            ));
        }
        for (index, rect) in page.rects.iter().enumerate() {
            let inside = rect.min.0 <= rect.max.0
                && rect.min.1 <= rect.max.1
                && rect.max.0 <= page.size.0
                && rect.max.1 <= page.size.1;
            if !inside {
                return Err(invalid(
                    format!("pages[{number}].rects[{index}]"),
                    format!(
                        "{:?}..{:?} is not a rect inside the {}x{} page",
                        rect.min, rect.max, page.size.0, page.size.1
                    ),
                ));
            }
        }
    }
    for (number, frame) in file.frames.iter().enumerate() {
        let Some(page) = file.pages.get(frame.page as usize) else {
            return Err(invalid(
                format!("frames[{number}].page"),
                format!(
                    "is {}, but there are {} pages",
                    frame.page,
                    file.pages.len()
                ),
            ));
        };
        if frame.index as usize >= page.rects.len() {
            return Err(invalid(
                format!("frames[{number}].index"),
                format!(
                    "is {}, but page {} has {} rects",
                    frame.index,
                    frame.page,
                    page.rects.len()
                ),
            ));
        }
    }
    let check_frames = |field: String, frames: &[u32]| match frames
        .iter()
        .find(|index| **index as usize >= file.frames.len())
    {
        Some(bad) => Err(invalid(
            field,
            format!(
                "refers to frame {bad}, but there are {} frames",
                file.frames.len()
            ),
        )),
        None => Ok(()),
    };
    for (name, sprite) in &file.sprites {
        check_frames(format!("sprites[{name:?}].frames"), &sprite.frames)?;
        if sprite.frames.is_empty() {
            return Err(invalid(
                format!("sprites[{name:?}].frames"),
                "is empty".into(),
            ));
        }
        if let Some(bad) = sprite
            .directions
            .iter()
            .find(|facing| facing_degrees(facing).is_none())
        {
            return Err(invalid(
                format!("sprites[{name:?}].directions"),
                format!("has {bad:?}; facings are n, ne, e, se, s, sw, w, nw"),
            ));
        }
        let size = sprite.size;
        let inside = |(x, y): (f32, f32)| {
            x.is_finite()
                && y.is_finite()
                && (0.0..=size.0 as f32).contains(&x)
                && (0.0..=size.1 as f32).contains(&y)
        };
        if let Some(pivot) = sprite.pivot.filter(|p| !inside(*p)) {
            return Err(invalid(
                format!("sprites[{name:?}].pivot"),
                format!("is {pivot:?}, outside the {}x{} frame", size.0, size.1),
            ));
        }
        for (slice_name, slice) in &sprite.slices {
            let (x, y, w, h) = slice.rect;
            let fits = w > 0 && h > 0 && x + w <= size.0 && y + h <= size.1;
            let centre_fits = slice
                .center
                .is_none_or(|(cx, cy, cw, ch)| cw > 0 && ch > 0 && cx + cw <= w && cy + ch <= h);
            if !(fits && centre_fits) {
                return Err(invalid(
                    format!("sprites[{name:?}].slices[{slice_name:?}]"),
                    format!(
                        "is {:?} (centre {:?}), not inside the {}x{} frame",
                        slice.rect, slice.center, size.0, size.1
                    ),
                ));
            }
        }
        for (clip_name, clip) in &sprite.clips {
            let field = format!("sprites[{name:?}].clips[{clip_name:?}]");
            if let Some(pivot) = clip.pivot.filter(|p| !inside(*p)) {
                return Err(invalid(
                    format!("{field}.pivot"),
                    format!("is {pivot:?}, outside the {}x{} frame", size.0, size.1),
                ));
            }
            check_frames(format!("{field}.frames"), &clip.frames)?;
            if clip.frames.is_empty() {
                return Err(invalid(format!("{field}.frames"), "is empty".into()));
            }
            if !(clip.fps.is_finite() && clip.fps > 0.0) {
                return Err(invalid(
                    format!("{field}.fps"),
                    format!("is {}, expected a positive number", clip.fps),
                ));
            }
            if !clip.durations.is_empty() && clip.durations.len() != clip.frames.len() {
                return Err(invalid(
                    format!("{field}.durations"),
                    format!(
                        "has {} entries for {} frames",
                        clip.durations.len(),
                        clip.frames.len()
                    ),
                ));
            }
            if let Some(bad) = clip
                .durations
                .iter()
                .find(|ms| !(ms.is_finite() && **ms > 0.0))
            {
                return Err(invalid(
                    format!("{field}.durations"),
                    format!("has {bad}, expected positive milliseconds"),
                ));
            }
            if Playback::from_name(&clip.playback).is_none() {
                return Err(invalid(
                    format!("{field}.playback"),
                    format!(
                        "is {:?}; expected forward, reverse, pingpong or pingpong_reverse",
                        clip.playback
                    ),
                ));
            }
            if !clip.direction.is_empty() {
                let direction = &clip.direction;
                if !sprite.directions.contains(direction) {
                    return Err(invalid(
                        format!("{field}.direction"),
                        format!(
                            "is {direction:?}, not one of the sprite's directions {:?}",
                            sprite.directions
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn build_atlas(
    file: AtlasFile,
    pages: Vec<Handle<Image>>,
    layouts: Vec<Handle<TextureAtlasLayout>>,
) -> SparkyAtlas {
    let page_sizes = file
        .pages
        .iter()
        .map(|page| UVec2::new(page.size.0, page.size.1))
        .collect();
    let frames = file
        .frames
        .iter()
        .map(|frame| AtlasFrame {
            sprite: frame.sprite.clone(),
            animation: frame.animation.clone(),
            frame: frame.frame,
            page: frame.page as usize,
            index: frame.index as usize,
            rect: rect_of(file.pages[frame.page as usize].rects[frame.index as usize]),
            offset: UVec2::new(frame.offset.0, frame.offset.1),
            source_size: UVec2::new(frame.source_size.0, frame.source_size.1),
        })
        .collect();
    let indices = |frames: &[u32]| frames.iter().map(|index| *index as usize).collect();
    let sprites = file
        .sprites
        .iter()
        .map(|(name, sprite)| {
            let clips = sprite
                .clips
                .iter()
                .map(|(clip_name, clip)| {
                    (
                        clip_name.clone(),
                        AtlasClip {
                            frames: indices(&clip.frames),
                            fps: clip.fps,
                            looping: clip.looping,
                            animation: (!clip.direction.is_empty()).then(|| clip.animation.clone()),
                            direction: (!clip.direction.is_empty()).then(|| clip.direction.clone()),
                            durations: if clip.durations.is_empty() {
                                vec![1.0 / clip.fps; clip.frames.len()]
                            } else {
                                clip.durations.iter().map(|ms| ms / 1000.0).collect()
                            },
                            playback: Playback::from_name(&clip.playback).unwrap_or_default(),
                            cycle: Playback::from_name(&clip.playback)
                                .unwrap_or_default()
                                .cycle(clip.frames.len()),
                            pivot: clip.pivot.map(|(x, y)| Vec2::new(x, y)),
                            repeat: clip.repeat,
                        },
                    )
                })
                .collect();
            (
                name.clone(),
                AtlasSprite {
                    size: UVec2::new(sprite.size.0, sprite.size.1),
                    frames: indices(&sprite.frames),
                    directions: sprite.directions.clone(),
                    pivot: sprite
                        .pivot
                        .map(|(x, y)| Vec2::new(x, y))
                        .unwrap_or(Vec2::new(sprite.size.0 as f32, sprite.size.1 as f32) / 2.0),
                    slices: sprite
                        .slices
                        .iter()
                        .map(|(name, slice)| {
                            let (x, y, w, h) = slice.rect;
                            let rect = URect::new(x, y, x + w, y + h);
                            (
                                name.clone(),
                                AtlasSlice {
                                    rect,
                                    center: slice.center.map(|(cx, cy, cw, ch)| {
                                        URect::new(x + cx, y + cy, x + cx + cw, y + cy + ch)
                                    }),
                                    pivot: slice
                                        .pivot
                                        .map(|(px, py)| IVec2::new(x as i32 + px, y as i32 + py)),
                                    data: slice.data.clone(),
                                },
                            )
                        })
                        .collect(),
                    clips,
                },
            )
        })
        .collect();
    SparkyAtlas {
        name: file.name,
        pages,
        layouts,
        page_sizes,
        frames,
        sprites,
    }
}
