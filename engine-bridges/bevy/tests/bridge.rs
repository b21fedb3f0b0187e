//! `SparkyBridgePlugin` end to end over real ZeroMQ sockets: a PUB socket in the test
//! (and the Python `Publisher` in a subprocess) talks to a headless app.

mod common;

use std::time::{Duration, Instant};

use bevy::image::TextureAtlasLayout;
use bevy::math::URect;
use bevy::prelude::*;
use bevy_sparky::prelude::*;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(20);
const SESSION_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SESSION_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

struct Rig {
    app: App,
    publisher: zmq::Socket,
    _context: zmq::Context,
    temp: tempfile::TempDir,
    atlas: Handle<SparkyAtlas>,
}

impl Rig {
    /// Fixture assets in a temp folder, a PUB socket on a free loopback port, an app
    /// with the bridge connected to it and the atlas loaded.
    fn new() -> Rig {
        let temp = tempfile::tempdir().unwrap();
        copy_tree(&fixture_dir(), temp.path());
        let context = zmq::Context::new();
        let publisher = context.socket(zmq::PUB).unwrap();
        publisher.set_linger(0).unwrap();
        publisher.bind("tcp://127.0.0.1:*").unwrap();
        let endpoint = publisher.get_last_endpoint().unwrap().unwrap();
        let (app, atlas) = bridge_app_with_atlas(temp.path(), endpoint, TIMEOUT);
        Rig {
            app,
            publisher,
            _context: context,
            temp,
            atlas,
        }
    }

    fn send(&self, frames: &(Vec<u8>, Vec<u8>)) {
        self.publisher
            .send_multipart([&frames.0, &frames.1], 0)
            .unwrap();
    }

    /// Send heartbeats of `session` until the bridge has seen one (ZeroMQ's slow
    /// joiner: a PUB drops messages until the SUB's subscription arrived); returns
    /// the next free seq.
    fn connect(&mut self, session: &str) -> i64 {
        let mut seq = 1;
        let start = Instant::now();
        loop {
            self.send(&message(
                "hello",
                session,
                seq,
                &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
            ));
            seq += 1;
            for _ in 0..10 {
                self.app.update();
                std::thread::sleep(Duration::from_millis(5));
            }
            if self.status().session.as_deref() == Some(session) {
                return self.status().last_seq.unwrap() as i64 + 1;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "the bridge never heard the publisher"
            );
        }
    }

    fn status(&self) -> SparkyBridgeStatus {
        self.app.world().resource::<SparkyBridgeStatus>().clone()
    }

    /// Update until a message of type `M` was written; return all written meanwhile.
    fn collect<M: Message + Clone>(&mut self, what: &str) -> Vec<M> {
        let mut seen = Vec::new();
        pump_until(&mut self.app, TIMEOUT, what, |app| {
            seen.extend(
                app.world()
                    .resource::<Messages<M>>()
                    .iter_current_update_messages()
                    .cloned(),
            );
            !seen.is_empty()
        });
        seen
    }

    fn layout_rect(&self, index: usize) -> URect {
        let world = self.app.world();
        let atlas = world
            .resource::<Assets<SparkyAtlas>>()
            .get(&self.atlas)
            .unwrap();
        world
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&atlas.layouts[0])
            .unwrap()
            .textures[index]
    }
}

fn assets_changed(session: &str, seq: i64, build: i64, assets: Vec<Mp>) -> (Vec<u8>, Vec<u8>) {
    message(
        "assets-changed",
        session,
        seq,
        &[("build", Mp::Int(build)), ("assets", Mp::Array(assets))],
    )
}

#[test]
fn assets_changed_reloads_the_bevy_asset_and_writes_a_message() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    assert_eq!(
        rig.status().rescans,
        1,
        "the first message counts as a new session"
    );

    // The build rewrote the atlas on disk (moved rect 3).
    let file = rig.temp.path().join("sprites/characters.atlas.ron");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace(
            "(min: (48, 0), max: (62, 13))",
            "(min: (40, 16), max: (64, 32))",
        ),
    )
    .unwrap();
    rig.send(&assets_changed(
        SESSION_A,
        seq,
        2,
        vec![
            bevy_asset(
                "characters.atlas.ron",
                "sprites/characters.atlas.ron",
                "atlas",
                "modified",
            ),
            // Other targets are not the Bevy bridge's business.
            map(&[
                ("target", s("godot")),
                ("path", s("hero.tres")),
                ("engine_path", s("res://sprites/hero.tres")),
                ("kind", s("sprite-frames")),
                ("change", s("modified")),
                ("hash", s(&"1".repeat(64))),
                ("sprites", Mp::Array(vec![s("hero")])),
                ("atlas", s("characters")),
            ]),
        ],
    ));
    let messages: Vec<SparkyAssetsChanged> = rig.collect("SparkyAssetsChanged");
    assert_eq!(
        messages,
        vec![SparkyAssetsChanged {
            build: Some(2),
            paths: vec!["sprites/characters.atlas.ron".into()],
            removed: vec![],
            rescan: false,
        }]
    );
    let status = rig.status();
    assert_eq!(status.rescans, 1, "an in-sequence message does not rescan");
    assert_eq!(
        status.recent_reloads.last().map(String::as_str),
        Some("sprites/characters.atlas.ron")
    );
    pump_until(&mut rig.app, TIMEOUT, "the reloaded atlas", |app| {
        let world = app.world();
        let atlas = world
            .resource::<Assets<SparkyAtlas>>()
            .iter()
            .next()
            .unwrap()
            .1
            .clone();
        world
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&atlas.layouts[0])
            .unwrap()
            .textures[3]
            == URect::new(40, 16, 64, 32)
    });
    assert_eq!(rig.layout_rect(3), URect::new(40, 16, 64, 32));
}

#[test]
fn a_changed_page_image_is_reloaded() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    // Let the rescan's reloads settle, then watch for a fresh Modified event.
    for _ in 0..20 {
        rig.app.update();
        std::thread::sleep(Duration::from_millis(5));
    }
    let page = rig.temp.path().join("sprites/characters_1.png");
    std::fs::copy(rig.temp.path().join("sprites/characters_0.png"), &page).unwrap();
    rig.send(&assets_changed(
        SESSION_A,
        seq,
        3,
        vec![bevy_asset(
            "characters_1.png",
            "sprites/characters_1.png",
            "texture",
            "modified",
        )],
    ));
    let page_handle = {
        let world = rig.app.world();
        world
            .resource::<Assets<SparkyAtlas>>()
            .get(&rig.atlas)
            .unwrap()
            .pages[1]
            .clone()
    };
    pump_until(&mut rig.app, TIMEOUT, "page 1 to become 64x32", |app| {
        app.world()
            .resource::<Assets<Image>>()
            .get(&page_handle)
            .is_some_and(|image| image.size() == UVec2::new(64, 32))
    });
}

#[test]
fn build_failed_reaches_the_game_with_its_errors() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    let error = map(&[
        ("file", s("sparky.toml")),
        ("line", Mp::Int(12)),
        ("column", Mp::Int(5)),
        ("sprite", s("hero")),
        ("stage", s("manifest")),
        (
            "message",
            s("unknown palette 'endesga32' — did you mean 'endesga-32'?"),
        ),
    ]);
    let bare = map(&[
        ("file", Mp::Nil),
        ("line", Mp::Nil),
        ("column", Mp::Nil),
        ("sprite", Mp::Nil),
        ("stage", Mp::Nil),
        ("message", s("out of memory")),
    ]);
    rig.send(&message(
        "build-failed",
        SESSION_A,
        seq,
        &[
            ("build", Mp::Int(4)),
            ("errors", Mp::Array(vec![error, bare])),
        ],
    ));
    let failed: Vec<SparkyBuildFailed> = rig.collect("SparkyBuildFailed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].build, 4);
    let errors = &failed[0].errors;
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0].file.as_deref(), Some("sparky.toml"));
    assert_eq!((errors[0].line, errors[0].column), (Some(12), Some(5)));
    assert_eq!(errors[0].stage.as_deref(), Some("manifest"));
    assert_eq!(
        errors[0].to_string(),
        "sparky.toml:12:5: [manifest] sprite 'hero': unknown palette 'endesga32' — did you mean 'endesga-32'?"
    );
    assert_eq!(errors[1].to_string(), "out of memory");
}

#[test]
fn a_new_session_or_a_seq_gap_triggers_a_rescan_of_everything_known() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    assert_eq!(rig.status().rescans, 1);

    // Gap: seq + 5 instead of seq.
    rig.send(&message(
        "hello",
        SESSION_A,
        seq + 5,
        &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
    ));
    let rescans: Vec<SparkyAssetsChanged> = rig.collect("a rescan after a gap");
    assert_eq!(rescans.len(), 1);
    assert!(rescans[0].rescan);
    assert_eq!(rescans[0].build, None);
    for expected in [
        "sprites/characters.atlas.ron",
        "sprites/characters_0.png",
        "sprites/characters_1.png",
    ] {
        assert!(
            rescans[0].paths.iter().any(|path| path == expected),
            "{expected} in {:?}",
            rescans[0].paths
        );
    }
    assert_eq!(rig.status().rescans, 2);

    // In sequence again: nothing.
    rig.send(&message(
        "hello",
        SESSION_A,
        seq + 6,
        &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
    ));
    pump_until(&mut rig.app, TIMEOUT, "the next hello", |app| {
        app.world().resource::<SparkyBridgeStatus>().last_seq == Some(seq as u64 + 6)
    });
    assert_eq!(rig.status().rescans, 2);

    // Publisher restarted: new session, seq back to 1. Messages stay readable for two
    // updates: drop the earlier rescan so `collect` cannot return it again.
    rig.app
        .world_mut()
        .resource_mut::<Messages<SparkyAssetsChanged>>()
        .clear();
    rig.send(&message(
        "hello",
        SESSION_B,
        1,
        &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
    ));
    let rescans: Vec<SparkyAssetsChanged> = rig.collect("a rescan after a restart");
    assert!(rescans[0].rescan);
    let status = rig.status();
    assert_eq!(status.rescans, 3);
    assert_eq!(status.session.as_deref(), Some(SESSION_B));
    let reloads_of_atlas = status
        .recent_reloads
        .iter()
        .filter(|path| *path == "sprites/characters.atlas.ron")
        .count();
    assert_eq!(
        reloads_of_atlas, 3,
        "every rescan reloads the loaded atlas: {:?}",
        status.recent_reloads
    );
}

#[test]
fn refused_messages_are_counted_never_fatal_and_force_a_rescan() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    // Garbage body, wrong version, path escaping the assets folder.
    rig.publisher
        .send_multipart([b"sparky.hello".as_slice(), &[0xc1]], 0)
        .unwrap();
    let (topic, mut body) = message(
        "hello",
        SESSION_A,
        seq,
        &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
    );
    let v = body.iter().position(|byte| *byte == b'v').unwrap();
    body[v + 1] = 2;
    rig.publisher.send_multipart([&topic, &body], 0).unwrap();
    rig.send(&assets_changed(
        SESSION_A,
        seq + 2,
        5,
        vec![bevy_asset(
            "x.png",
            "../../etc/x.png",
            "texture",
            "modified",
        )],
    ));
    pump_until(&mut rig.app, TIMEOUT, "three refusals", |app| {
        app.world().resource::<SparkyBridgeStatus>().refused >= 3
    });
    let status = rig.status();
    assert_eq!(status.refused, 3);
    assert!(
        status.last_refusal.as_deref().unwrap().starts_with("path"),
        "{:?}",
        status.last_refusal
    );
    assert!(!status.recent_reloads.iter().any(|path| path.contains("..")));

    // The refused messages used seq, seq + 1, seq + 2 but did not advance the
    // bridge's seq: the next valid message shows a gap → rescan.
    rig.send(&message(
        "hello",
        SESSION_A,
        seq + 3,
        &[("interval_ms", Mp::Int(2000)), ("build", Mp::Int(0))],
    ));
    let rescans: Vec<SparkyAssetsChanged> = rig.collect("the rescan after refusals");
    assert!(rescans[0].rescan);
    assert_eq!(rig.status().rescans, 2);
    assert_eq!(rig.status().last_seq, Some(seq as u64 + 3));
}

#[test]
fn a_symlink_out_of_the_assets_folder_is_not_reloaded() {
    let mut rig = Rig::new();
    let seq = rig.connect(SESSION_A);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.png"), b"not an image").unwrap();
    std::os::unix::fs::symlink(outside.path(), rig.temp.path().join("sprites/linked")).unwrap();
    rig.send(&assets_changed(
        SESSION_A,
        seq,
        6,
        vec![bevy_asset(
            "linked/secret.png",
            "sprites/linked/secret.png",
            "texture",
            "modified",
        )],
    ));
    pump_until(&mut rig.app, TIMEOUT, "the refusal", |app| {
        app.world().resource::<SparkyBridgeStatus>().refused == 1
    });
    let status = rig.status();
    assert!(
        status
            .last_refusal
            .unwrap()
            .contains("outside the assets folder")
    );
    assert!(
        !status
            .recent_reloads
            .iter()
            .any(|path| path.contains("secret"))
    );
}

#[test]
fn the_subscriber_thread_stops_when_the_app_exits() {
    let mut rig = Rig::new();
    rig.connect(SESSION_A);
    assert!(rig.app.world().resource::<SparkySubscriber>().is_running());
    rig.app.world_mut().write_message(AppExit::Success);
    let start = Instant::now();
    rig.app.update();
    // Joined inside that update: the thread polls its stop flag every 50 ms.
    assert!(!rig.app.world().resource::<SparkySubscriber>().is_running());
    assert!(start.elapsed() < Duration::from_secs(2));
}

#[test]
fn an_unusable_endpoint_turns_hot_reload_off_without_stopping_the_game() {
    let temp = tempfile::tempdir().unwrap();
    let mut app = headless_app(temp.path());
    app.add_plugins(SparkyBridgePlugin::with_endpoint("no-such-transport://x"));
    pump_until(&mut app, TIMEOUT, "the subscriber to give up", |app| {
        !app.world().resource::<SparkySubscriber>().is_running()
    });
    app.update();
    assert_eq!(app.world().resource::<SparkyBridgeStatus>().messages, 0);
}
