//! `SparkyAnimation` on a headless app with a manual clock: frames advance at the
//! clip's fps, the sprite switches page and layout, one-shot clips stop and write one
//! `ClipFinished`, a reloaded atlas is picked up.

mod common;

use std::time::Duration;

use bevy::asset::RecursiveDependencyLoadState;
use bevy::image::TextureAtlas;
use bevy::prelude::*;
use bevy::sprite::Anchor;
use bevy::time::TimeUpdateStrategy;
use bevy_sparky::prelude::*;
use common::*;

struct Scene {
    app: App,
    atlas: Handle<SparkyAtlas>,
    _temp: tempfile::TempDir,
}

/// The fixture atlas loaded, time frozen (each update then advances `step`).
fn scene(step: Duration) -> Scene {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let mut app = headless_app(temp.path());
    app.insert_resource(TimeUpdateStrategy::ManualDuration(Duration::ZERO));
    let atlas: Handle<SparkyAtlas> = app
        .world()
        .resource::<AssetServer>()
        .load("sprites/characters.atlas.ron");
    let id = atlas.id();
    pump_until(&mut app, Duration::from_secs(20), "the atlas", |app| {
        matches!(
            app.world()
                .resource::<AssetServer>()
                .get_recursive_dependency_load_state(id),
            Some(RecursiveDependencyLoadState::Loaded)
        )
    });
    app.insert_resource(TimeUpdateStrategy::ManualDuration(step));
    Scene {
        app,
        atlas,
        _temp: temp,
    }
}

fn shown(app: &App, entity: Entity) -> (usize, usize) {
    let world = app.world();
    let sprite = world.get::<Sprite>(entity).unwrap();
    let atlas_handle = world
        .resource::<Assets<SparkyAtlas>>()
        .iter()
        .next()
        .unwrap()
        .1
        .clone();
    let page = atlas_handle
        .pages
        .iter()
        .position(|page| *page == sprite.image)
        .expect("image is a page");
    let TextureAtlas { layout, index } = sprite.texture_atlas.clone().expect("texture atlas set");
    assert_eq!(
        layout, atlas_handle.layouts[page],
        "layout belongs to the shown page"
    );
    (page, index)
}

#[test]
fn a_looping_clip_advances_at_its_fps_and_wraps() {
    // idle: 8 fps, frames on page 0 at rects 0, 1, 2, 3, 1.
    let mut scene = scene(Duration::from_millis(125));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "idle"))
        .id();
    let rects_of_idle = [0, 1, 2, 3, 1];
    let mut cursors = Vec::new();
    for _ in 0..7 {
        scene.app.update();
        let cursor = scene
            .app
            .world()
            .get::<SparkyAnimation>(entity)
            .unwrap()
            .cursor;
        assert_eq!(
            shown(&scene.app, entity),
            (0, rects_of_idle[cursor]),
            "cursor {cursor}"
        );
        cursors.push(cursor);
    }
    // One frame per 125 ms update, wrapping after the fifth.
    for pair in cursors.windows(2) {
        assert_eq!(pair[1], (pair[0] + 1) % 5, "cursor history {cursors:?}");
    }
    let animation = scene.app.world().get::<SparkyAnimation>(entity).unwrap();
    assert!(animation.playing);
}

#[test]
fn half_the_frame_time_shows_each_frame_for_two_updates() {
    let mut scene = scene(Duration::from_micros(62_500));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "idle"))
        .id();
    let mut cursors = Vec::new();
    for _ in 0..9 {
        scene.app.update();
        cursors.push(
            scene
                .app
                .world()
                .get::<SparkyAnimation>(entity)
                .unwrap()
                .cursor,
        );
    }
    let changes = cursors.windows(2).filter(|pair| pair[0] != pair[1]).count();
    assert!((3..=4).contains(&changes), "cursor history {cursors:?}");
}

#[test]
fn a_one_shot_clip_switches_page_stops_on_its_last_frame_and_finishes_once() {
    // attack: 10 fps, page 1, rects 0 and 1, looping: false.
    let mut scene = scene(Duration::from_millis(100));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "attack"))
        .id();
    let mut finished = Vec::new();
    for _ in 0..8 {
        scene.app.update();
        let messages = scene.app.world().resource::<Messages<ClipFinished>>();
        finished.extend(messages.iter_current_update_messages().cloned());
    }
    assert_eq!(
        finished,
        vec![ClipFinished {
            entity,
            sprite: "hero".into(),
            clip: "attack".into()
        }]
    );
    assert_eq!(shown(&scene.app, entity), (1, 1));
    assert!(
        !scene
            .app
            .world()
            .get::<SparkyAnimation>(entity)
            .unwrap()
            .playing
    );
}

#[test]
fn the_once_override_stops_a_looping_clip() {
    let mut scene = scene(Duration::from_millis(125));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "idle").once())
        .id();
    let mut finished = 0;
    for _ in 0..12 {
        scene.app.update();
        finished += scene
            .app
            .world()
            .resource::<Messages<ClipFinished>>()
            .iter_current_update_messages()
            .count();
    }
    assert_eq!(finished, 1);
    let animation = scene.app.world().get::<SparkyAnimation>(entity).unwrap();
    assert_eq!(animation.cursor, 4);
    assert!(!animation.playing);
}

#[test]
fn a_trimmed_frame_is_anchored_at_its_untrimmed_centre() {
    let mut scene = scene(Duration::ZERO);
    let mut animation = SparkyAnimation::new(scene.atlas.clone(), "hero", "idle");
    animation.cursor = 3; // rect 48..62 x 0..13, offset (1, 2), source 16x16
    let entity = scene.app.world_mut().spawn(animation).id();
    scene.app.update();
    let anchor = scene.app.world().get::<Anchor>(entity).unwrap();
    // Source centre (8, 8) is at (7, 6) in the 14x13 rect.
    let expected = Vec2::new(7.0 / 14.0 - 0.5, 0.5 - 6.0 / 13.0);
    assert!(
        (anchor.0 - expected).length() < 1e-6,
        "{:?} vs {expected:?}",
        anchor.0
    );
}

#[test]
fn a_still_sprite_shows_its_only_frame() {
    let mut scene = scene(Duration::from_millis(100));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::still(scene.atlas.clone(), "torch"))
        .id();
    for _ in 0..3 {
        scene.app.update();
    }
    assert_eq!(shown(&scene.app, entity), (0, 2));
}

#[test]
fn an_unknown_clip_leaves_the_sprite_alone_without_panicking() {
    let mut scene = scene(Duration::from_millis(100));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "dance"))
        .id();
    scene.app.update();
    scene.app.update();
    assert!(
        scene
            .app
            .world()
            .get::<Sprite>(entity)
            .unwrap()
            .texture_atlas
            .is_none()
    );
}

#[test]
fn a_reloaded_atlas_is_used_on_the_next_frame() {
    let mut scene = scene(Duration::ZERO);
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::still(scene.atlas.clone(), "torch"))
        .id();
    scene.app.update();
    assert_eq!(shown(&scene.app, entity), (0, 2));
    let file = scene._temp.path().join("sprites/characters.atlas.ron");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "(sprite: \"torch\", animation: \"\", frame: 0, page: 0, index: 2,",
            "(sprite: \"torch\", animation: \"\", frame: 0, page: 1, index: 1,",
        ),
    )
    .unwrap();
    scene
        .app
        .world()
        .resource::<AssetServer>()
        .reload("sprites/characters.atlas.ron");
    pump_until(
        &mut scene.app,
        Duration::from_secs(20),
        "the torch to move to page 1",
        |app| shown(app, entity) == (1, 1),
    );
}

#[test]
fn a_pingpong_clip_with_per_frame_durations_shows_the_right_frame_at_each_time() {
    // wave: frames at rects 0, 1, 2 of page 0 showing 100, 200, 300 ms, pingpong, looping:
    // one cycle is 0 (0..100) 1 (100..300) 2 (300..600) 1 (600..800), then 0 again.
    // Updates of 45 ms never land on a boundary within the first 19.
    let mut scene = scene(Duration::from_millis(45));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "wave"))
        .id();
    let expected_rect = |ms: u32| match ms % 800 {
        0..100 => 0,
        100..300 => 1,
        300..600 => 2,
        _ => 1,
    };
    let clip = {
        let atlases = scene.app.world().resource::<Assets<SparkyAtlas>>();
        let atlas = atlases.get(&scene.atlas).unwrap();
        atlas.clip("hero", "wave").unwrap().clone()
    };
    assert_eq!(clip.playback, Playback::Pingpong);
    assert_eq!(clip.cycle, vec![0, 1, 2, 1]);
    for step in 1..=19u32 {
        scene.app.update();
        let ms = step * 45;
        assert_eq!(
            shown(&scene.app, entity),
            (0, expected_rect(ms)),
            "at {ms} ms"
        );
        // The clip's own lookup agrees (frames 2, 3, 4 of the atlas sit at rects 0, 1, 2).
        assert_eq!(
            clip.frame_at(ms as f32 / 1000.0),
            2 + expected_rect(ms),
            "frame_at {ms} ms"
        );
    }
}

#[test]
fn playback_cycles_follow_aseprite_directions() {
    assert_eq!(Playback::Forward.cycle(3), vec![0, 1, 2]);
    assert_eq!(Playback::Reverse.cycle(3), vec![2, 1, 0]);
    assert_eq!(Playback::Pingpong.cycle(4), vec![0, 1, 2, 3, 2, 1]);
    assert_eq!(Playback::PingpongReverse.cycle(4), vec![3, 2, 1, 0, 1, 2]);
    assert_eq!(Playback::Pingpong.cycle(1), vec![0]);
    assert_eq!(Playback::PingpongReverse.cycle(2), vec![1, 0]);
}

#[test]
fn a_clip_pivot_becomes_the_anchor_and_slices_are_data() {
    let mut scene = scene(Duration::ZERO);
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "wave"))
        .id();
    scene.app.update();
    // wave's pivot (8, 16) is the bottom centre of its untrimmed 16x16 frames.
    let anchor = scene.app.world().get::<Anchor>(entity).unwrap();
    assert!(
        (anchor.0 - Vec2::new(0.0, -0.5)).length() < 1e-6,
        "{:?}",
        anchor.0
    );
    let atlases = scene.app.world().resource::<Assets<SparkyAtlas>>();
    let hero = atlases.get(&scene.atlas).unwrap().sprite("hero").unwrap();
    assert_eq!(
        hero.pivot,
        Vec2::new(8.0, 8.0),
        "no sprite pivot: the centre"
    );
    let panel = &hero.slices["panel"];
    assert_eq!(panel.rect, URect::new(0, 0, 16, 16));
    assert_eq!(panel.center, Some(URect::new(4, 4, 12, 12)));
    assert_eq!(panel.borders(), Some((4, 4, 4, 4)));
    assert_eq!(panel.pivot, Some(IVec2::new(8, 16)));
    assert_eq!(panel.data, "ui");
    assert_eq!(hero.slices["hitbox"].rect, URect::new(2, 4, 14, 16));
    assert_eq!(hero.slices["hitbox"].center, None);
}

#[test]
fn a_clip_with_a_repeat_count_plays_that_many_cycles_then_finishes_once() {
    // attack: 10 fps, rects 0 and 1 of page 1, looping: false, repeat: 2.
    let mut scene = scene(Duration::from_millis(100));
    let entity = scene
        .app
        .world_mut()
        .spawn(SparkyAnimation::new(scene.atlas.clone(), "hero", "attack"))
        .id();
    let mut rects = Vec::new();
    let mut finished_at = Vec::new();
    for update in 1..=6 {
        scene.app.update();
        rects.push(shown(&scene.app, entity).1);
        let messages = scene.app.world().resource::<Messages<ClipFinished>>();
        if messages.iter_current_update_messages().count() > 0 {
            finished_at.push(update);
        }
    }
    assert_eq!(rects, [1, 0, 1, 1, 1, 1]);
    assert_eq!(finished_at, [4]);
    let clip = {
        let atlases = scene.app.world().resource::<Assets<SparkyAtlas>>();
        atlases
            .get(&scene.atlas)
            .unwrap()
            .clip("hero", "attack")
            .unwrap()
            .clone()
    };
    assert_eq!(clip.repeat, 2);
    // frames 0 and 1 of the atlas: 0 then 1, twice, then 1 for good
    let at = |ms: f32| clip.frame_at(ms / 1000.0);
    assert_eq!(
        [at(50.0), at(150.0), at(250.0), at(350.0), at(450.0)],
        [0, 1, 0, 1, 1]
    );
}
