//! Hot reload: a ZeroMQ SUB socket on a background thread feeding the Bevy world.
//!
//! The thread connects to the `sparky-assets watch` publisher, subscribes to
//! `sparky.`, decodes every message with the [`crate::protocol`] decoder (size bound
//! first) and sends the result over a bounded crossbeam channel. It never blocks the
//! game: a full channel drops the message, which the `seq` check below turns into a
//! rescan. ZeroMQ reconnects by itself when the publisher restarts.
//!
//! Each frame [`receive_hot_reload`] drains the channel without blocking and:
//! * tracks `session`/`seq` — a new session (the first message counts as one) or a
//!   gap reloads every asset the bridge knows of (a *rescan*);
//! * calls `AssetServer::reload` for each `bevy` asset of an `assets-changed`
//!   (asset paths only: never absolute, never `..`, never outside `assets_root`);
//! * writes [`SparkyAssetsChanged`] and [`SparkyBuildFailed`] messages.
//!
//! Invariants: a refused message is logged and counted, never fatal, and does not
//! advance `seq`; the thread stops (and is joined) on `AppExit` or when the world is
//! dropped; the same path is reloaded at most once per frame.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use bevy::app::AppExit;
use bevy::asset::io::AssetSourceId;
use bevy::asset::{AssetPath, UntypedAssetId};
use bevy::prelude::*;
use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::SparkyPlugin;
use crate::atlas::SparkyAtlas;
use crate::protocol::{
    BuildError, DEFAULT_ENDPOINT, DecodeError, Envelope, ErrorCode, MAX_MESSAGE_BYTES, Message,
    TOPIC_PREFIX, decode,
};

/// Messages waiting for the game beyond this are dropped (and cause a rescan).
const CHANNEL_CAPACITY: usize = 4096;
/// How often the subscriber thread checks its stop flag.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// ZMTP PING interval on the subscriber's connection.
const HEARTBEAT_IVL: Duration = Duration::from_secs(2);
/// A connection that answers no PING for this long is dropped and reconnected.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(6);

/// Connects the game to `sparky-assets watch` and reloads changed assets.
#[derive(Clone, Debug)]
pub struct SparkyBridgePlugin {
    /// The publisher's endpoint (default `tcp://127.0.0.1:5557`).
    pub endpoint: String,
    /// Bodies larger than this are refused unread (default 1 MiB).
    pub max_message_bytes: usize,
    /// The folder on disk behind Bevy's default asset source (usually `assets`). When
    /// set, an engine path that resolves (through symlinks) outside it is refused.
    pub assets_root: Option<PathBuf>,
}

impl Default for SparkyBridgePlugin {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            max_message_bytes: MAX_MESSAGE_BYTES,
            assets_root: None,
        }
    }
}

impl SparkyBridgePlugin {
    /// The default settings with another endpoint.
    pub fn with_endpoint(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            ..Self::default()
        }
    }
}

/// A build changed these assets (or a rescan reloaded them).
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct SparkyAssetsChanged {
    /// The build number, `None` for a rescan.
    pub build: Option<u64>,
    /// Bevy asset paths that were reloaded (added or modified).
    pub paths: Vec<String>,
    /// Bevy asset paths whose file was removed (not reloaded).
    pub removed: Vec<String>,
    /// True when the bridge reloaded everything it knows (new session or lost messages).
    pub rescan: bool,
}

/// A build failed; the previous assets stay in place.
#[derive(Message, Clone, Debug, PartialEq, Eq)]
pub struct SparkyBuildFailed {
    pub build: u64,
    pub errors: Vec<BuildError>,
}

/// What the bridge has seen so far (read it for diagnostics or tests).
#[derive(Resource, Clone, Debug, Default)]
pub struct SparkyBridgeStatus {
    /// The publisher session of the last valid message.
    pub session: Option<String>,
    /// The `seq` of the last valid message.
    pub last_seq: Option<u64>,
    /// The project named by the last valid message.
    pub project: Option<String>,
    /// Valid messages received.
    pub messages: u64,
    /// Messages refused by the decoder or by the bridge's path rules.
    pub refused: u64,
    /// The last refusal, for display.
    pub last_refusal: Option<String>,
    /// Times everything was reloaded.
    pub rescans: u64,
    /// `AssetServer::reload` calls issued.
    pub reloads: u64,
    /// Every asset path reloaded, in order (bounded to the last 256).
    pub recent_reloads: Vec<String>,
}

/// Asset paths the bridge reloads on a rescan, besides loaded atlases and their pages.
#[derive(Resource, Default, Debug)]
struct KnownAssetPaths(BTreeSet<String>);

#[derive(Resource, Clone, Debug)]
struct AssetsRoot(Option<PathBuf>);

/// What the subscriber thread hands to the game.
#[derive(Debug)]
enum Incoming {
    Valid(Box<Envelope>),
    Refused(DecodeError),
}

#[derive(Resource)]
struct IncomingMessages(Receiver<Incoming>);

/// Owns the subscriber thread; dropping it (with the world) stops and joins the thread.
#[derive(Resource)]
pub struct SparkySubscriber {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl SparkySubscriber {
    /// True while the subscriber thread runs (false after `AppExit`, or when the
    /// socket could not be opened — the log says why).
    pub fn is_running(&self) -> bool {
        self.handle
            .as_ref()
            .is_some_and(|handle| !handle.is_finished())
    }

    /// Stop the thread and wait for it (at most one poll interval). Idempotent.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take()
            && handle.join().is_err()
        {
            error!("sparky: the hot-reload subscriber thread panicked");
        }
    }
}

impl Drop for SparkySubscriber {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Plugin for SparkyBridgePlugin {
    fn build(&self, app: &mut App) {
        if !app.is_plugin_added::<SparkyPlugin>() {
            app.add_plugins(SparkyPlugin);
        }
        let (sender, receiver) = crossbeam_channel::bounded(CHANNEL_CAPACITY);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let endpoint = self.endpoint.clone();
        let max_bytes = self.max_message_bytes;
        let handle = std::thread::Builder::new()
            .name("sparky-hot-reload".into())
            .spawn(move || run_subscriber(&endpoint, max_bytes, &sender, &thread_stop))
            .expect("sparky: could not spawn the hot-reload subscriber thread");
        app.add_message::<SparkyAssetsChanged>()
            .add_message::<SparkyBuildFailed>()
            .init_resource::<SparkyBridgeStatus>()
            .init_resource::<KnownAssetPaths>()
            .insert_resource(AssetsRoot(self.assets_root.clone()))
            .insert_resource(IncomingMessages(receiver))
            .insert_resource(SparkySubscriber {
                stop,
                handle: Some(handle),
            })
            .add_systems(PreUpdate, receive_hot_reload)
            .add_systems(Last, stop_subscriber_on_exit);
    }
}

/// The subscriber thread: receive, decode, hand over; until `stop` is set.
fn run_subscriber(endpoint: &str, max_bytes: usize, sender: &Sender<Incoming>, stop: &AtomicBool) {
    let context = zmq::Context::new();
    let socket = match open_socket(&context, endpoint, max_bytes) {
        Ok(socket) => socket,
        Err(error) => {
            error!("sparky: cannot subscribe to {endpoint}: {error}; hot reload is off");
            return;
        }
    };
    info!("sparky: listening for hot-reload messages on {endpoint}");
    while !stop.load(Ordering::Relaxed) {
        let frames = match socket.recv_multipart(0) {
            Ok(frames) => frames,
            Err(zmq::Error::EAGAIN) | Err(zmq::Error::EINTR) => continue,
            Err(error) => {
                error!("sparky: hot-reload socket failed: {error}; hot reload is off");
                return;
            }
        };
        let incoming = match frames.as_slice() {
            [topic, body] => match decode(topic, body, max_bytes) {
                Ok(envelope) => Incoming::Valid(Box::new(envelope)),
                Err(error) => Incoming::Refused(error),
            },
            _ => Incoming::Refused(DecodeError {
                code: ErrorCode::Malformed,
                detail: format!("message has {} frames, expected 2", frames.len()),
            }),
        };
        match sender.try_send(incoming) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!("sparky: game is not draining hot-reload messages; dropping one")
            }
            Err(TrySendError::Disconnected(_)) => return,
        }
    }
}

fn open_socket(
    context: &zmq::Context,
    endpoint: &str,
    max_bytes: usize,
) -> zmq::Result<zmq::Socket> {
    let socket = context.socket(zmq::SUB)?;
    socket.set_linger(0)?;
    socket.set_rcvtimeo(POLL_INTERVAL.as_millis() as i32)?;
    // Memory guard: libzmq drops a peer that sends a frame over this, so a hostile or
    // broken publisher cannot make us allocate without bound. The decoder applies the
    // exact bound.
    let guard = i64::try_from(max_bytes)
        .unwrap_or(i64::MAX / 2)
        .saturating_mul(2)
        .saturating_add(64 * 1024);
    socket.set_maxmsgsize(guard)?;
    // ZMTP heartbeats: a publisher that vanished without closing TCP (machine slept,
    // cable pulled) is noticed after HEARTBEAT_TIMEOUT and reconnected to, which is
    // what the protocol's "3 silent heartbeat intervals" rule asks for.
    socket.set_heartbeat_ivl(HEARTBEAT_IVL.as_millis() as i32)?;
    socket.set_heartbeat_timeout(HEARTBEAT_TIMEOUT.as_millis() as i32)?;
    socket.set_subscribe(TOPIC_PREFIX.as_bytes())?;
    socket.connect(endpoint)?;
    Ok(socket)
}

fn stop_subscriber_on_exit(
    mut exits: MessageReader<AppExit>,
    thread: Option<ResMut<SparkySubscriber>>,
) {
    if exits.read().next().is_some()
        && let Some(mut thread) = thread
    {
        thread.stop();
    }
}

/// Why a `bevy` engine path is not reloaded, beyond the protocol's own path rules.
fn engine_path_refusal(engine_path: &str, assets_root: Option<&Path>) -> Option<String> {
    if let Some(problem) = crate::protocol::path_problem(engine_path) {
        return Some(format!("engine_path {engine_path:?} {problem}"));
    }
    let root = assets_root?;
    let full = root.join(engine_path);
    // A removed file cannot be resolved; its path already passed the textual rules.
    let resolved = full.canonicalize().ok()?;
    let root = root.canonicalize().ok()?;
    if resolved.starts_with(&root) {
        None
    } else {
        Some(format!(
            "engine_path {engine_path:?} resolves to {} outside the assets folder {}",
            resolved.display(),
            root.display()
        ))
    }
}

/// Drain the subscriber channel (never blocks) and act on each message.
#[allow(clippy::too_many_arguments)]
fn receive_hot_reload(
    incoming: Res<IncomingMessages>,
    assets_root: Res<AssetsRoot>,
    server: Res<AssetServer>,
    atlases: Res<Assets<SparkyAtlas>>,
    mut status: ResMut<SparkyBridgeStatus>,
    mut known: ResMut<KnownAssetPaths>,
    mut changed: MessageWriter<SparkyAssetsChanged>,
    mut failed: MessageWriter<SparkyBuildFailed>,
) {
    let mut to_reload = BTreeSet::new();
    let mut rescan = false;
    for item in incoming.0.try_iter() {
        let envelope = match item {
            Incoming::Valid(envelope) => envelope,
            Incoming::Refused(error) => {
                warn!("sparky: refused a hot-reload message: {error}");
                status.refused += 1;
                status.last_refusal = Some(error.to_string());
                continue;
            }
        };
        let in_sequence = status.session.as_deref() == Some(envelope.session.as_str())
            && status.last_seq.and_then(|seq| seq.checked_add(1)) == Some(envelope.seq);
        if !in_sequence {
            if status.session.as_deref() != Some(envelope.session.as_str()) {
                info!(
                    "sparky: publisher session {} (project '{}'): reloading everything",
                    envelope.session, envelope.project
                );
            } else {
                warn!(
                    "sparky: hot-reload messages lost (seq {} after {:?}): reloading everything",
                    envelope.seq, status.last_seq
                );
            }
            rescan = true;
        }
        status.session = Some(envelope.session.clone());
        status.last_seq = Some(envelope.seq);
        status.project = Some(envelope.project.clone());
        status.messages += 1;
        match envelope.message {
            Some(Message::AssetsChanged { build, assets }) => {
                let mut paths = Vec::new();
                let mut removed = Vec::new();
                for asset in assets.iter().filter(|asset| asset.target == "bevy") {
                    let Some(engine_path) = asset.engine_path.as_deref() else {
                        continue;
                    };
                    if let Some(refusal) =
                        engine_path_refusal(engine_path, assets_root.0.as_deref())
                    {
                        warn!("sparky: not reloading: {refusal}");
                        status.refused += 1;
                        status.last_refusal = Some(refusal);
                        continue;
                    }
                    if asset.change == "removed" {
                        known.0.remove(engine_path);
                        removed.push(engine_path.to_owned());
                    } else {
                        known.0.insert(engine_path.to_owned());
                        to_reload.insert(engine_path.to_owned());
                        paths.push(engine_path.to_owned());
                    }
                }
                if !paths.is_empty() || !removed.is_empty() {
                    info!(
                        "sparky: build {build}: reloading {} assets, {} removed",
                        paths.len(),
                        removed.len()
                    );
                    changed.write(SparkyAssetsChanged {
                        build: Some(build),
                        paths,
                        removed,
                        rescan: false,
                    });
                }
            }
            Some(Message::BuildFailed { build, errors }) => {
                for error in &errors {
                    warn!("sparky: build {build} failed: {error}");
                }
                failed.write(SparkyBuildFailed { build, errors });
            }
            _ => {}
        }
    }
    if rescan {
        let everything = rescan_paths(&server, &atlases, &known.0);
        // Remember them: an atlas whose reload is still in flight may be missing from
        // `Assets` at the next rescan, and must be reloaded then all the same.
        known.0.extend(everything.iter().cloned());
        status.rescans += 1;
        changed.write(SparkyAssetsChanged {
            build: None,
            paths: everything.iter().cloned().collect(),
            removed: Vec::new(),
            rescan: true,
        });
        to_reload.extend(everything);
    }
    for path in to_reload {
        server.reload(AssetPath::from_path(Path::new(&path)).into_owned());
        status.reloads += 1;
        status.recent_reloads.push(path);
    }
    let excess = status.recent_reloads.len().saturating_sub(256);
    status.recent_reloads.drain(..excess);
}

/// Every asset path the bridge manages: paths it was told about, loaded atlases and
/// their page images (default asset source only, without labels).
fn rescan_paths(
    server: &AssetServer,
    atlases: &Assets<SparkyAtlas>,
    known: &BTreeSet<String>,
) -> BTreeSet<String> {
    let mut paths = known.clone();
    let mut add = |id: UntypedAssetId| {
        if let Some(path) = server.get_path(id)
            && matches!(path.source(), AssetSourceId::Default)
            && path.label().is_none()
        {
            paths.insert(path.path().to_string_lossy().replace('\\', "/"));
        }
    };
    for (id, atlas) in atlases.iter() {
        add(id.untyped());
        for page in &atlas.pages {
            add(page.id().untyped());
        }
    }
    paths
}
