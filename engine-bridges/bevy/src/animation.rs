//! Sprite animation driven by a [`SparkyAtlas`]: the [`SparkyAnimation`] component and
//! the system that plays it.
//!
//! Invariants:
//! * The system looks sprites and clips up by name every frame, so an atlas that is
//!   hot-reloaded (frames moved, pages added, a clip shortened) is picked up on the
//!   next frame; the playhead is clamped into the new clip.
//! * It writes `Sprite::image`, `Sprite::texture_atlas` and the `Anchor` only when
//!   they differ, so change detection fires only on real frame changes.
//! * A one-shot clip writes exactly one [`ClipFinished`] when it reaches its end and
//!   then stays on its last frame with `playing == false`.

use bevy::image::TextureAtlas;
use bevy::prelude::*;
use bevy::sprite::Anchor;

use crate::atlas::{AtlasFrame, SparkyAtlas};

/// Whether a clip repeats: as the atlas says, or overridden.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Reflect)]
pub enum Repeat {
    /// Use the clip's `looping` flag from the atlas file.
    #[default]
    FromClip,
    /// Always loop.
    Loop,
    /// Play once, stop on the last frame, write [`ClipFinished`].
    Once,
}

/// Plays one clip of one sprite of a [`SparkyAtlas`] on this entity's `Sprite`.
///
/// With `clip == None` the sprite's first frame is shown (still sprites).
#[derive(Component, Clone, Debug)]
#[require(Sprite)]
pub struct SparkyAnimation {
    pub atlas: Handle<SparkyAtlas>,
    pub sprite: String,
    pub clip: Option<String>,
    pub playing: bool,
    pub repeat: Repeat,
    /// Playback speed multiplier (1.0 = the clip's fps).
    pub speed: f32,
    /// Step of the clip's play cycle ([`AtlasClip::cycle`]); for a forward clip, the
    /// index into the clip's frame list.
    pub cursor: usize,
    /// Seconds accumulated toward the next step.
    pub elapsed: f32,
    /// Set the entity's `Anchor` to the frame's pivot (the clip's, the sprite's, else the
    /// centre), so the entity's position is the pivot and a trimmed frame sits where its
    /// untrimmed source would (on by default; turn off to keep an anchor of your own).
    pub anchor_trimmed: bool,
    /// The last name lookup failed (warned once, cleared when it succeeds again).
    missing_warned: bool,
    /// Cycles of the clip played to their end (for a clip with a `repeat` count).
    completed_cycles: u32,
}

impl SparkyAnimation {
    /// Play `clip` of `sprite`, from its first frame.
    pub fn new(
        atlas: Handle<SparkyAtlas>,
        sprite: impl Into<String>,
        clip: impl Into<String>,
    ) -> Self {
        Self {
            clip: Some(clip.into()),
            ..Self::still(atlas, sprite)
        }
    }

    /// Show the first frame of a sprite (no clip).
    pub fn still(atlas: Handle<SparkyAtlas>, sprite: impl Into<String>) -> Self {
        Self {
            atlas,
            sprite: sprite.into(),
            clip: None,
            playing: true,
            repeat: Repeat::FromClip,
            speed: 1.0,
            cursor: 0,
            elapsed: 0.0,
            anchor_trimmed: true,
            missing_warned: false,
            completed_cycles: 0,
        }
    }

    /// Play once and stop on the last frame, whatever the atlas says.
    pub fn once(mut self) -> Self {
        self.repeat = Repeat::Once;
        self
    }

    /// Loop, whatever the atlas says.
    pub fn looping(mut self) -> Self {
        self.repeat = Repeat::Loop;
        self
    }

    /// Switch to another clip from its first frame and start playing.
    pub fn play(&mut self, clip: impl Into<String>) {
        self.clip = Some(clip.into());
        self.cursor = 0;
        self.elapsed = 0.0;
        self.playing = true;
        self.completed_cycles = 0;
    }
}

/// A one-shot clip reached its last frame.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct ClipFinished {
    pub entity: Entity,
    pub sprite: String,
    pub clip: String,
}

/// Advance every [`SparkyAnimation`] by `Time::delta` and show its current frame.
pub fn animate_sprites(
    time: Res<Time>,
    atlases: Res<Assets<SparkyAtlas>>,
    mut animated: Query<(
        Entity,
        &mut SparkyAnimation,
        &mut Sprite,
        Option<&mut Anchor>,
    )>,
    mut finished: MessageWriter<ClipFinished>,
) {
    let delta = time.delta_secs();
    for (entity, mut animation, mut sprite, anchor) in &mut animated {
        let Some(atlas) = atlases.get(&animation.atlas) else {
            continue;
        };
        let Some(atlas_sprite) = atlas.sprite(&animation.sprite) else {
            warn_missing(&mut animation, atlas, "sprite");
            continue;
        };
        let still = [0];
        let (frames, cycle, durations, clip_loops, clip_repeat, pivot) = match &animation.clip {
            None => (
                &atlas_sprite.frames[..1],
                &still[..],
                &[][..],
                false,
                0,
                atlas_sprite.pivot,
            ),
            Some(name) => match atlas_sprite.clips.get(name) {
                Some(clip) => (
                    &clip.frames[..],
                    &clip.cycle[..],
                    &clip.durations[..],
                    clip.looping,
                    clip.repeat,
                    clip.pivot.unwrap_or(atlas_sprite.pivot),
                ),
                None => {
                    warn_missing(&mut animation, atlas, "clip");
                    continue;
                }
            },
        };
        animation.missing_warned = false;
        let looping = match animation.repeat {
            Repeat::FromClip => clip_loops,
            Repeat::Loop => true,
            Repeat::Once => false,
        };
        // A clip's `repeat` count (FromClip only): plays that many cycles, then stops.
        let cycles = match animation.repeat {
            Repeat::FromClip if !clip_loops => clip_repeat.max(1),
            _ => 1,
        };
        // A reload may have shortened the clip.
        if animation.cursor >= cycle.len() {
            animation.cursor = if looping { 0 } else { cycle.len() - 1 };
        }
        if animation.playing && !durations.is_empty() {
            animation.elapsed += delta;
            loop {
                let frame_time = durations[cycle[animation.cursor]] / animation.speed.max(0.0);
                if !(frame_time.is_finite() && animation.elapsed >= frame_time) {
                    break;
                }
                animation.elapsed -= frame_time;
                if animation.cursor + 1 < cycle.len() {
                    animation.cursor += 1;
                } else if looping {
                    animation.cursor = 0;
                } else if animation.completed_cycles + 1 < cycles {
                    animation.completed_cycles += 1;
                    animation.cursor = 0;
                } else {
                    animation.playing = false;
                    animation.elapsed = 0.0;
                    finished.write(ClipFinished {
                        entity,
                        sprite: animation.sprite.clone(),
                        clip: animation.clip.clone().unwrap_or_default(),
                    });
                    break;
                }
            }
        }
        let frame = &atlas.frames[frames[cycle[animation.cursor]]];
        let anchor = anchor.filter(|_| animation.anchor_trimmed);
        show_frame(atlas, frame, pivot, &mut sprite, anchor);
    }
}

fn warn_missing(animation: &mut SparkyAnimation, atlas: &SparkyAtlas, what: &str) {
    if !animation.missing_warned {
        animation.missing_warned = true;
        let known: Vec<&str> = match what {
            "sprite" => atlas.sprites.keys().map(String::as_str).collect(),
            _ => atlas
                .sprite(&animation.sprite)
                .map(|sprite| sprite.clips.keys().map(String::as_str).collect())
                .unwrap_or_default(),
        };
        warn!(
            "sparky: atlas '{}' has no {what} '{}' (sprite '{}'); known: {}",
            atlas.name,
            if what == "sprite" {
                animation.sprite.as_str()
            } else {
                animation.clip.as_deref().unwrap_or("")
            },
            animation.sprite,
            known.join(", ")
        );
    }
}

fn show_frame(
    atlas: &SparkyAtlas,
    frame: &AtlasFrame,
    pivot: Vec2,
    sprite: &mut Mut<Sprite>,
    anchor: Option<Mut<Anchor>>,
) {
    let image = &atlas.pages[frame.page];
    if sprite.image != *image {
        sprite.image = image.clone();
    }
    let layout = &atlas.layouts[frame.page];
    let up_to_date = sprite
        .texture_atlas
        .as_ref()
        .is_some_and(|current| current.layout == *layout && current.index == frame.index);
    if !up_to_date {
        sprite.texture_atlas = Some(TextureAtlas {
            layout: layout.clone(),
            index: frame.index,
        });
    }
    if let Some(mut anchor) = anchor {
        let wanted = Anchor(pivot_anchor(frame, pivot));
        if *anchor != wanted {
            *anchor = wanted;
        }
    }
}

/// The anchor that keeps a trimmed frame where its untrimmed source would be: the
/// centre of `source_size`, in the rect's anchor space (-0.5..0.5, y up).
pub fn trim_anchor(frame: &AtlasFrame) -> Vec2 {
    pivot_anchor(frame, frame.source_size.as_vec2() / 2.0)
}

/// The `Anchor` that puts `pivot` (untrimmed frame pixels, x right, y down) at the
/// entity's position, in the shown rect's anchor space (-0.5..0.5, y up); it may lie
/// outside that range when the pivot is outside the trimmed rect.
pub fn pivot_anchor(frame: &AtlasFrame, pivot: Vec2) -> Vec2 {
    let size = frame.rect.size().as_vec2();
    if size.x <= 0.0 || size.y <= 0.0 {
        return Vec2::ZERO;
    }
    let at = pivot - frame.offset.as_vec2();
    Vec2::new(at.x / size.x - 0.5, 0.5 - at.y / size.y)
}
