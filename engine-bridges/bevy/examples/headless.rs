//! Headless hot-reload listener: no window, no renderer. Loads an atlas, connects to
//! `sparky-assets watch` and prints what arrives — the smallest complete use of the
//! crate, and a way to check a publisher from a terminal.
//!
//! ```text
//! cargo run --example headless -- [ASSETS_DIR] [ATLAS_PATH] [ENDPOINT] [SECONDS]
//! ```
//! Defaults: the crate's test fixture (`tests/fixtures/assets`,
//! `sprites/characters.atlas.ron`), `tcp://127.0.0.1:5557`, run until Ctrl-C (0).

use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::asset::AssetPlugin;
use bevy::image::{CompressedImageFormats, ImageLoader, ImagePlugin};
use bevy::log::LogPlugin;
use bevy::prelude::*;
use bevy_sparky::prelude::*;

#[derive(Resource)]
struct Watched(Handle<SparkyAtlas>);

#[derive(Resource)]
struct RunFor(Option<Duration>);

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
    let atlas_path = arg(1, "sprites/characters.atlas.ron");
    let endpoint = arg(2, bevy_sparky::protocol::DEFAULT_ENDPOINT);
    let seconds: u64 = arg(3, "0").parse().expect("SECONDS must be a whole number");

    let mut app = App::new();
    app.add_plugins((
        MinimalPlugins.set(ScheduleRunnerPlugin::run_loop(Duration::from_millis(16))),
        LogPlugin::default(),
        AssetPlugin {
            file_path: assets.clone(),
            ..Default::default()
        },
        ImagePlugin::default(),
    ))
    // No renderer: register the PNG loader ourselves.
    .register_asset_loader(ImageLoader::new(CompressedImageFormats::empty()))
    .add_plugins(SparkyBridgePlugin {
        endpoint,
        assets_root: Some(assets.into()),
        ..Default::default()
    })
    .insert_resource(RunFor((seconds > 0).then(|| Duration::from_secs(seconds))))
    .add_systems(
        Startup,
        move |mut commands: Commands, server: Res<AssetServer>| {
            commands.insert_resource(Watched(server.load(atlas_path.clone())));
        },
    )
    .add_systems(Update, (report_atlas, report_hot_reload, stop_after));
    app.run()
}

fn report_atlas(
    mut events: MessageReader<AssetEvent<SparkyAtlas>>,
    atlases: Res<Assets<SparkyAtlas>>,
    watched: Res<Watched>,
) {
    for event in events.read() {
        if let AssetEvent::Added { id } | AssetEvent::Modified { id } = event
            && *id == watched.0.id()
            && let Some(atlas) = atlases.get(*id)
        {
            let sprites: Vec<String> = atlas
                .sprites
                .iter()
                .map(|(name, sprite)| format!("{name} ({} clips)", sprite.clips.len()))
                .collect();
            info!(
                "atlas '{}': {} pages, {} frames, sprites: {}",
                atlas.name,
                atlas.pages.len(),
                atlas.frames.len(),
                sprites.join(", ")
            );
        }
    }
}

fn report_hot_reload(
    mut changed: MessageReader<SparkyAssetsChanged>,
    mut failed: MessageReader<SparkyBuildFailed>,
) {
    for message in changed.read() {
        match message.build {
            Some(build) => info!(
                "build {build} changed {:?} (removed {:?})",
                message.paths, message.removed
            ),
            None => info!("rescan reloaded {:?}", message.paths),
        }
    }
    for message in failed.read() {
        for error in &message.errors {
            warn!("build {} failed: {error}", message.build);
        }
    }
}

fn stop_after(time: Res<Time<Real>>, run_for: Res<RunFor>, mut exit: MessageWriter<AppExit>) {
    if run_for.0.is_some_and(|limit| time.elapsed() >= limit) {
        exit.write(AppExit::Success);
    }
}
