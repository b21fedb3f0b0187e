//! The bridge against the real Python `Publisher` (sparky_assets.hotreload.publisher)
//! in a subprocess: what the watch process sends is what the game acts on, and a
//! publisher restart on the same endpoint is picked up (ZeroMQ reconnect) as a new
//! session with a rescan.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use bevy::image::TextureAtlasLayout;
use bevy::math::URect;
use bevy::prelude::*;
use bevy_sparky::prelude::*;
use common::*;

const TIMEOUT: Duration = Duration::from_secs(30);

struct PythonPublisher {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    endpoint: String,
    session: String,
}

impl PythonPublisher {
    fn start(endpoint: &str) -> PythonPublisher {
        let python = std::env::var("SPARKY_PYTHON").unwrap_or_else(|_| "python3".into());
        let mut child = Command::new(&python)
            .arg(crate_dir().join("tests/python_publisher.py"))
            .arg(endpoint)
            .current_dir(repo_root())
            .env("PYTHONPATH", repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot run {python}: {error}"));
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut words = line.split_whitespace();
        let (Some(endpoint), Some(session)) = (words.next(), words.next()) else {
            panic!("the publisher did not start (set SPARKY_PYTHON to the venv python): {line:?}");
        };
        PythonPublisher {
            endpoint: endpoint.to_owned(),
            session: session.to_owned(),
            child,
            stdin,
            stdout,
        }
    }

    /// Send one command and wait until the publisher has sent its messages.
    fn command(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        assert!(
            line.starts_with("ok "),
            "publisher answered {line:?} to {command:?}"
        );
    }

    fn quit(mut self) {
        writeln!(self.stdin, "quit").unwrap();
        assert!(self.child.wait().unwrap().success());
    }
}

fn wait_for_session(app: &mut App, session: &str) {
    pump_until(app, TIMEOUT, "the publisher's hello", |app| {
        app.world()
            .resource::<SparkyBridgeStatus>()
            .session
            .as_deref()
            == Some(session)
    });
}

#[test]
fn the_python_publishers_messages_reach_the_game_and_a_restart_rescans() {
    let temp = tempfile::tempdir().unwrap();
    copy_tree(&fixture_dir(), temp.path());
    let mut publisher = PythonPublisher::start("tcp://127.0.0.1:0");

    let (mut app, atlas) = bridge_app_with_atlas(temp.path(), publisher.endpoint.clone(), TIMEOUT);
    let id = atlas.id();
    wait_for_session(&mut app, &publisher.session);
    assert_eq!(app.world().resource::<SparkyBridgeStatus>().rescans, 1);

    // A build rewrites the atlas; the publisher announces it.
    let file = temp.path().join("sprites/characters.atlas.ron");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replacen(
            "(min: (0, 0), max: (16, 16)),\n                (min: (16, 0)",
            "(min: (0, 16), max: (16, 32)),\n                (min: (16, 0)",
            1,
        ),
    )
    .unwrap();
    publisher.command("changed sprites/characters.atlas.ron");
    let mut changed: Vec<SparkyAssetsChanged> = Vec::new();
    pump_until(&mut app, TIMEOUT, "SparkyAssetsChanged", |app| {
        changed.extend(
            app.world()
                .resource::<Messages<SparkyAssetsChanged>>()
                .iter_current_update_messages()
                .cloned(),
        );
        changed.iter().any(|message| !message.rescan)
    });
    let message = changed.iter().find(|message| !message.rescan).unwrap();
    assert_eq!(message.build, Some(1));
    assert_eq!(
        message.paths,
        vec!["sprites/characters.atlas.ron".to_owned()]
    );
    pump_until(&mut app, TIMEOUT, "the reloaded layout", |app| {
        let world = app.world();
        let atlas = world.resource::<Assets<SparkyAtlas>>().get(id).unwrap();
        world
            .resource::<Assets<TextureAtlasLayout>>()
            .get(&atlas.layouts[0])
            .unwrap()
            .textures[0]
            == URect::new(0, 16, 16, 32)
    });

    publisher.command("failed");
    let mut failed: Vec<SparkyBuildFailed> = Vec::new();
    pump_until(&mut app, TIMEOUT, "SparkyBuildFailed", |app| {
        failed.extend(
            app.world()
                .resource::<Messages<SparkyBuildFailed>>()
                .iter_current_update_messages()
                .cloned(),
        );
        !failed.is_empty()
    });
    assert_eq!(failed[0].build, 2);
    let errors: Vec<String> = failed[0].errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        errors,
        vec![
            "sparky.toml:9:11: [manifest] unknown palette 'endesga32'".to_owned(),
            "[manifest] sprite 'hero': frame count must be positive".to_owned(),
        ]
    );
    let status = app.world().resource::<SparkyBridgeStatus>().clone();
    assert_eq!(
        status.rescans, 1,
        "heartbeats and builds arrived in sequence"
    );
    assert_eq!(status.refused, 0);

    // Restart the watch process on the same endpoint: ZeroMQ reconnects, the new
    // session triggers a rescan that reloads the atlas and its pages.
    let endpoint = publisher.endpoint.clone();
    publisher.quit();
    let publisher = PythonPublisher::start(&endpoint);
    wait_for_session(&mut app, &publisher.session);
    let status = app.world().resource::<SparkyBridgeStatus>().clone();
    assert_eq!(status.rescans, 2);
    assert!(
        status.recent_reloads.ends_with(&[
            "sprites/characters.atlas.ron".to_owned(),
            "sprites/characters_0.png".to_owned(),
            "sprites/characters_1.png".to_owned(),
        ]),
        "{:?}",
        status.recent_reloads
    );
    publisher.quit();
}
