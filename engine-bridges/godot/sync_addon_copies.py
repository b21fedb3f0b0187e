"""Copy the sparky_bridge addon to the projects that ship it (run after editing the addon).

Role: ``engine-bridges/godot/addons/sparky_bridge`` is the one source; the Godot starter
(``templates/godot/addons/``) and the example game (``examples/dungeon/godot-game/addons/``)
hold real copies, not symlinks (a symlink breaks on Windows checkouts and in the wheel).
``tests/test_addon_copies.py`` fails while a copy differs. ``just sync-addon`` runs this.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "engine-bridges" / "godot" / "addons" / "sparky_bridge"
COPIES = (
    REPO / "templates" / "godot" / "addons" / "sparky_bridge",
    REPO / "examples" / "dungeon" / "godot-game" / "addons" / "sparky_bridge",
)


def main() -> None:
    for copy in COPIES:
        if copy.exists():
            shutil.rmtree(copy)
        shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("*.uid", "*.import"))
        print(f"synced {copy.relative_to(REPO)}")


if __name__ == "__main__":
    main()
