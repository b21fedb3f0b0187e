//! Starter game made by `sparky-assets init --engine bevy`: the hero from the sparky-assets
//! atlas, playing one clip, hot-reloaded while `sparky-assets watch` runs.
//!
//! `cargo run` opens a window (cargo feature `window`, on by default).
//! `cargo run -- --headless` needs no window or GPU: it loads the atlas, starts the clip and
//! exits 0 once the first frame is shown, or 1 if the atlas, sprite or clip is missing
//! (after `--timeout-secs`, default 30). Run `sparky-assets build` first: it writes
//! `assets/sprites/characters.atlas.ron` and its page PNGs.

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::{AssetPlugin, LoadState};
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_sparky::prelude::*;

const ATLAS: &str = "sprites/characters.atlas.ron";
const SPRITE: &str = "hero";
const CLIP: &str = "walk";

#[derive(Resource)]
struct Hero(Handle<SparkyAtlas>);

#[derive(Resource)]
struct Deadline(Duration);

fn main() -> AppExit {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let headless = args.iter().any(|arg| arg == "--headless");
    let timeout = args
        .iter()
        .position(|arg| arg == "--timeout-secs")
        .and_then(|at| args.get(at + 1))
        .map_or(30, |value| {
            value.parse().expect("--timeout-secs takes whole seconds")
        });

    let mut app = App::new();
    if headless {
        app.add_plugins((
            MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(16))),
            LogPlugin::default(),
            AssetPlugin::default(),
            ImagePlugin::default_nearest(),
        ))
        // No renderer: register the PNG loader ourselves.
        .register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()))
        .insert_resource(Deadline(Duration::from_secs(timeout)))
        .add_systems(Update, exit_once_playing);
    } else {
        add_window(&mut app);
    }
    app.add_plugins(SparkyBridgePlugin::default())
        .add_systems(Startup, spawn_hero)
        .run()
}

#[cfg(feature = "window")]
fn add_window(app: &mut App) {
    app.add_plugins(
        DefaultPlugins
            // Pixel art: nearest-neighbour sampling.
            .set(ImagePlugin::default_nearest())
            .set(WindowPlugin {
                primary_window: Some(Window {
                    title: "{{project_name}}".into(),
                    resolution: (1280, 720).into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
    )
    .add_systems(Startup, |mut commands: Commands| {
        commands.spawn(Camera2d);
    });
}

#[cfg(not(feature = "window"))]
fn add_window(_app: &mut App) {
    eprintln!("built without the `window` feature: run with --headless");
    std::process::exit(2);
}

fn spawn_hero(mut commands: Commands, server: Res<AssetServer>) {
    let atlas = server.load(ATLAS);
    commands.spawn((
        SparkyAnimation::new(atlas.clone(), SPRITE, CLIP),
        Transform::from_scale(Vec3::splat(8.0)),
    ));
    commands.insert_resource(Hero(atlas));
}

/// Headless mode: exit 0 once the atlas is loaded and the hero shows a frame of the clip.
fn exit_once_playing(
    server: Res<AssetServer>,
    atlases: Res<Assets<SparkyAtlas>>,
    hero: Res<Hero>,
    sprites: Query<(&SparkyAnimation, &Sprite)>,
    time: Res<Time<Real>>,
    deadline: Res<Deadline>,
    mut exit: MessageWriter<AppExit>,
) {
    if let Some(LoadState::Failed(error)) = server.get_load_state(&hero.0) {
        error!("cannot load {ATLAS}: {error} (run `sparky-assets build` first)");
        exit.write(AppExit::error());
        return;
    }
    if let Some(atlas) = atlases.get(&hero.0) {
        let Some(clip) = atlas
            .sprite(SPRITE)
            .and_then(|sprite| sprite.clips.get(CLIP))
        else {
            error!("{ATLAS} has no clip {SPRITE}/{CLIP}");
            exit.write(AppExit::error());
            return;
        };
        for (animation, sprite) in &sprites {
            if animation.playing && sprite.texture_atlas.is_some() {
                info!(
                    "atlas '{}' loaded: {} pages, {} frames; playing {SPRITE}/{CLIP} ({} frames at {} fps)",
                    atlas.name,
                    atlas.pages.len(),
                    atlas.frames.len(),
                    clip.frames.len(),
                    clip.fps
                );
                exit.write(AppExit::Success);
                return;
            }
        }
    }
    if time.elapsed() > deadline.0 {
        error!("{SPRITE}/{CLIP} was not playing after {:?}", deadline.0);
        exit.write(AppExit::error());
    }
}
