//! `bevy_sparky`: the Bevy side of sparky-assets.
//!
//! * [`SparkyPlugin`] — the `.atlas.ron` loader ([`SparkyAtlasLoader`] → [`SparkyAtlas`])
//!   and sprite animation ([`SparkyAnimation`], [`ClipFinished`]). No network.
//! * [`SparkyBridgePlugin`] (cargo feature `bridge`, on by default) — hot reload from
//!   `sparky-assets watch` over ZeroMQ (protocol v1, see `docs/protocol.md`).
//! * [`protocol`] — the pure protocol v1 decoder both use (no Bevy types).
//!
//! ```no_run
//! use bevy::prelude::*;
//! use bevy_sparky::prelude::*;
//!
//! let mut app = App::new();
//! app.add_plugins(DefaultPlugins);
//! #[cfg(feature = "bridge")]
//! app.add_plugins(SparkyBridgePlugin::default()); // adds SparkyPlugin too
//! #[cfg(not(feature = "bridge"))]
//! app.add_plugins(SparkyPlugin); // release build without networking
//! app.run();
//! ```

pub mod animation;
pub mod atlas;
#[cfg(feature = "bridge")]
pub mod bridge;
pub mod protocol;
pub mod tileset;

use bevy::image::TextureAtlasPlugin;
use bevy::prelude::*;

pub use animation::{ClipFinished, Repeat, SparkyAnimation, animate_sprites, pivot_anchor};
pub use atlas::{
    AtlasClip, AtlasFrame, AtlasLoadError, AtlasSlice, AtlasSprite, Playback, SparkyAtlas,
    SparkyAtlasLoader, SparkyAtlasLoaderSettings,
};
#[cfg(feature = "bridge")]
pub use bridge::{
    SparkyAssetsChanged, SparkyBridgePlugin, SparkyBridgeStatus, SparkyBuildFailed,
    SparkySubscriber,
};
pub use tileset::{
    SparkyTileset, SparkyTilesetLoader, TileValue, TilesetLoadError, neighbour_mask,
};

/// Everything a game usually needs: `use bevy_sparky::prelude::*;`.
pub mod prelude {
    pub use crate::animation::{ClipFinished, Repeat, SparkyAnimation};
    pub use crate::atlas::{Playback, SparkyAtlas};
    #[cfg(feature = "bridge")]
    pub use crate::bridge::{
        SparkyAssetsChanged, SparkyBridgePlugin, SparkyBridgeStatus, SparkyBuildFailed,
        SparkySubscriber,
    };
    pub use crate::tileset::{SparkyTileset, neighbour_mask};
    pub use crate::{SparkyAnimationSystems, SparkyPlugin};
}

/// The system set that advances [`SparkyAnimation`]s (in `Update`).
#[derive(SystemSet, Debug, Clone, PartialEq, Eq, Hash)]
pub struct SparkyAnimationSystems;

/// Registers [`SparkyAtlas`], its loader, [`ClipFinished`] and the animation system.
///
/// Needs `AssetPlugin` and `ImagePlugin` (both in `DefaultPlugins`); adds
/// `TextureAtlasPlugin` if nothing added it yet.
#[derive(Default)]
pub struct SparkyPlugin;

impl Plugin for SparkyPlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<TextureAtlasPlugin>() {
            app.add_plugins(TextureAtlasPlugin);
        }
        app.init_asset::<SparkyAtlas>()
            .init_asset_loader::<SparkyAtlasLoader>()
            .init_asset::<SparkyTileset>()
            .init_asset_loader::<SparkyTilesetLoader>()
            .add_message::<ClipFinished>()
            .add_systems(Update, animate_sprites.in_set(SparkyAnimationSystems));
    }
}
