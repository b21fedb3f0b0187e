//! Windowed demo: an animated sprite from an exported atlas, hot-reloaded while
//! `sparky-assets watch` runs.
//!
//! ```text
//! cargo run --example animated_sprite --features render -- [ASSETS_DIR] [ATLAS] [SPRITE] [CLIP] [ENDPOINT]
//! ```
//! Defaults: the crate's fixture atlas, sprite `hero`, clip `idle`, `tcp://127.0.0.1:5557`. Point
//! `[export.bevy] assets` of a `sparky.toml` at ASSETS_DIR, run `sparky-assets watch`,
//! edit the manifest: the sprite changes in the window. Keys: Space plays the next
//! clip, P pauses. A failed build is shown in the window title.
//!
//! `SPARKY_DEMO_SCREENSHOT=shot.png` saves a screenshot after `SPARKY_DEMO_SCREENSHOT_AFTER`
//! seconds (default 2) and exits (for checking the demo without a person at the screen).

use std::path::PathBuf;
use std::time::Duration;

use bevy::asset::AssetPlugin;
use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, ScreenshotCaptured, save_to_disk};
use bevy::window::PrimaryWindow;
use bevy_sparky::prelude::*;

#[derive(Resource)]
struct Demo {
    atlas: Handle<SparkyAtlas>,
    sprite: String,
    clip: String,
}

fn main() -> AppExit {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // An empty argument means "the default" (so later ones can be given).
    let arg = |index: usize, default: &str| match args.get(index) {
        Some(value) if !value.is_empty() => value.clone(),
        _ => default.to_owned(),
    };
    let assets = arg(
        0,
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/assets"),
    );
    let atlas = arg(1, "sprites/characters.atlas.ron");
    let sprite = arg(2, "hero");
    let clip = arg(3, "idle");
    let endpoint = arg(4, bevy_sparky::protocol::DEFAULT_ENDPOINT);

    App::new()
        .add_plugins(
            DefaultPlugins
                .set(AssetPlugin {
                    file_path: assets.clone(),
                    ..Default::default()
                })
                // Pixel art: nearest-neighbour sampling.
                .set(ImagePlugin::default_nearest())
                .set(WindowPlugin {
                    primary_window: Some(Window {
                        title: "bevy_sparky — animated sprite".into(),
                        resolution: (640, 400).into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
        )
        .add_plugins(SparkyBridgePlugin {
            endpoint,
            assets_root: Some(assets.into()),
            ..Default::default()
        })
        .add_systems(
            Startup,
            move |mut commands: Commands, server: Res<AssetServer>| {
                commands.spawn(Camera2d);
                let demo = Demo {
                    atlas: server.load(atlas.clone()),
                    sprite: sprite.clone(),
                    clip: clip.clone(),
                };
                commands.spawn((
                    SparkyAnimation::new(
                        demo.atlas.clone(),
                        demo.sprite.clone(),
                        demo.clip.clone(),
                    ),
                    Transform::from_scale(Vec3::splat(8.0)),
                ));
                commands.insert_resource(demo);
            },
        )
        .add_systems(Update, (keys, show_build_state, screenshot_and_exit))
        .run()
}

/// With `SPARKY_DEMO_SCREENSHOT` set: capture the window after
/// `SPARKY_DEMO_SCREENSHOT_AFTER` seconds (default 2), exit once saved.
fn screenshot_and_exit(
    mut commands: Commands,
    time: Res<Time<Real>>,
    mut requested: Local<bool>,
    mut exit: MessageWriter<AppExit>,
) {
    let Some(path) = std::env::var_os("SPARKY_DEMO_SCREENSHOT").map(PathBuf::from) else {
        return;
    };
    let after = std::env::var("SPARKY_DEMO_SCREENSHOT_AFTER")
        .ok()
        .and_then(|seconds| seconds.parse().ok())
        .unwrap_or(2.0);
    if !*requested && time.elapsed() >= Duration::from_secs_f64(after) {
        *requested = true;
        let mut save = save_to_disk(path);
        commands.spawn(Screenshot::primary_window()).observe(
            move |captured: On<ScreenshotCaptured>, mut exit: MessageWriter<AppExit>| {
                save(captured);
                exit.write(AppExit::Success);
            },
        );
    }
    if time.elapsed() >= Duration::from_secs_f64(after + 30.0) {
        error!("no screenshot 30 s after it was asked for");
        exit.write(AppExit::error());
    }
}

fn keys(
    input: Res<ButtonInput<KeyCode>>,
    atlases: Res<Assets<SparkyAtlas>>,
    mut demo: ResMut<Demo>,
    mut animations: Query<&mut SparkyAnimation>,
) {
    let Some(atlas) = atlases.get(&demo.atlas) else {
        return;
    };
    for mut animation in &mut animations {
        if input.just_pressed(KeyCode::KeyP) {
            animation.playing = !animation.playing;
        }
        if input.just_pressed(KeyCode::Space)
            && let Some(sprite) = atlas.sprite(&demo.sprite)
        {
            let names: Vec<&String> = sprite.clips.keys().collect();
            let next = names
                .iter()
                .position(|name| **name == demo.clip)
                .map_or(0, |at| (at + 1) % names.len().max(1));
            if let Some(name) = names.get(next) {
                demo.clip = (*name).clone();
                animation.play(demo.clip.clone());
                info!("playing {}/{}", demo.sprite, demo.clip);
            }
        }
    }
}

fn show_build_state(
    mut changed: MessageReader<SparkyAssetsChanged>,
    mut failed: MessageReader<SparkyBuildFailed>,
    mut windows: Query<&mut Window, With<PrimaryWindow>>,
) {
    let Ok(mut window) = windows.single_mut() else {
        return;
    };
    for message in failed.read() {
        let first = message
            .errors
            .first()
            .map(ToString::to_string)
            .unwrap_or_default();
        window.title = format!("build {} FAILED: {first}", message.build);
    }
    for message in changed.read() {
        window.title = format!("bevy_sparky — reloaded {} assets", message.paths.len());
    }
}
