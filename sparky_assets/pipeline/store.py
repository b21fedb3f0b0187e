"""The generated store and ``sparky.lock``: generated art that is committed with the game.

For every sprite made by a generator that *generates* (``needs_lock``: procedural,
diffusion, plugins), the result at sprite resolution and before palette lock is kept in
``sparky-generated/<sprite>.<key12>.png`` — the frames side by side, lossless — and
``sparky.lock`` records the generation key, the file, its SHA-256, and the inputs
that made it (to explain staleness). ``build --frozen`` only ever reads from here.

Both files are written atomically; the lock is rewritten only at the end of a
successful build, and store files it no longer names are removed after that, so a
crash leaves a lock whose every file exists.
"""

from __future__ import annotations

import hashlib
import io
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
from PIL import Image

from ..errors import Diagnostic, InvalidInput
from .fsutil import atomic_write

LOCK_NAME = "sparky.lock"
STORE_DIR = "sparky-generated"
LOCK_VERSION = 1


@dataclass
class LockEntry:
    generator: str
    key: str
    file: str
    sha256: str
    frames: int
    width: int
    height: int
    inputs: dict[str, Any] = field(default_factory=dict)
    manifest_key: str = ""
    """Hash of the manifest's description of the sprite; what ``--frozen`` compares."""


class GeneratedStore:
    def __init__(self, root: Path):
        self.root = root
        self.lock_path = root / LOCK_NAME
        self.dir = root / STORE_DIR
        self.tmp_dir = root / ".sparky" / "tmp"
        self.entries: dict[str, LockEntry] = {}
        self.problems: list[str] = []
        self._verified: dict[str, tuple] = {}
        self._load()
        self.dirty = False

    def _load(self) -> None:
        """Read sparky.lock. An unreadable lock (say, a merge conflict) is an error, not
        an empty lock: treating it as empty would regenerate and overwrite committed art."""
        if not self.lock_path.exists():
            return
        text = self.lock_path.read_text(encoding="utf-8", errors="replace")
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
            raise InvalidInput(
                Diagnostic(
                    f"{LOCK_NAME} is not valid TOML: {str(exc).split(' (at line')[0]}",
                    file=str(self.lock_path),
                    line=int(m.group(1)) if m else None,
                    column=int(m.group(2)) if m else None,
                    stage="generate",
                    hint="resolve the conflict, or delete sparky.lock to regenerate everything",
                )
            ) from None
        for name, e in (data.get("sprite") or {}).items():
            try:
                self.entries[name] = LockEntry(
                    e["generator"],
                    e["key"],
                    e["file"],
                    e["sha256"],
                    int(e["frames"]),
                    int(e["width"]),
                    int(e["height"]),
                    dict(e.get("inputs", {})),
                    str(e.get("manifest_key", "")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(
                    Diagnostic(
                        f"{LOCK_NAME}: entry for sprite '{name}' is incomplete ({exc})",
                        file=str(self.lock_path),
                        key=f"sprite.{name}",
                        stage="generate",
                    )
                ) from None
            if (
                Path(e["file"]).is_absolute()
                or ".." in Path(e["file"]).parts
                or not e["file"].startswith(STORE_DIR + "/")
            ):
                raise InvalidInput(
                    Diagnostic(
                        f"{LOCK_NAME}: sprite '{name}' points outside {STORE_DIR}/",
                        file=str(self.lock_path),
                        key=f"sprite.{name}.file",
                        found=repr(e["file"]),
                        stage="generate",
                    )
                )

    def verify(self, sprite: str) -> bool:
        """The locked file of ``sprite`` exists and matches its recorded hash (memoised per
        file state, so a long-lived builder does not re-hash unchanged files)."""
        entry = self.entries.get(sprite)
        if entry is None:
            return False
        path = self.root / entry.file
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        stamp = (entry.sha256, st.st_mtime_ns, st.st_size, st.st_ino)
        if self._verified.get(sprite) == stamp:
            return True
        ok = hashlib.sha256(path.read_bytes()).hexdigest() == entry.sha256
        if ok:
            self._verified[sprite] = stamp
        return ok

    def lookup(self, sprite: str, key: str) -> list[np.ndarray] | None:
        """The stored frames when the lock has ``key`` for ``sprite`` and the file checks out."""
        entry = self.entries.get(sprite)
        if entry is None or entry.key != key:
            return None
        path = self.root / entry.file
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.problems.append(f"{entry.file} (locked for '{sprite}') is missing")
            return None
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            self.problems.append(f"{entry.file} (locked for '{sprite}') does not match its hash in {LOCK_NAME}")
            return None
        strip = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))
        w = entry.width
        return [np.ascontiguousarray(strip[:, i * w : (i + 1) * w]) for i in range(entry.frames)]

    def staleness(self, sprite: str, manifest_key: str, inputs: dict[str, Any]) -> tuple[str | None, list[str]]:
        """Why ``sprite`` would need generating under ``--frozen`` (None: it would not),
        and the manifest keys that changed since it was locked."""
        entry = self.entries.get(sprite)
        if entry is None:
            return "not in sparky.lock (new sprite)", []
        if entry.manifest_key != manifest_key:
            changed = sorted(k for k in set(inputs) | set(entry.inputs) if inputs.get(k) != entry.inputs.get(k))
            fields = [k for k in changed if k in ("prompt", "seed", "size", "generator")]
            return f"changed since locked: {', '.join(changed) or 'generator settings'}", fields
        if not self.verify(sprite):
            return f"its stored result {entry.file} is missing or does not match sparky.lock", []
        return None, []

    def refresh(self, sprite: str, key: str, manifest_key: str, inputs: dict[str, Any]) -> None:
        """The manifest changed in a way that does not change the result (same generate
        key): record the new description, so ``--frozen`` agrees with this build."""
        entry = self.entries.get(sprite)
        if entry is not None and entry.key == key and (entry.manifest_key, entry.inputs) != (manifest_key, inputs):
            entry.manifest_key, entry.inputs = manifest_key, dict(inputs)
            self.dirty = True

    def record(
        self,
        sprite: str,
        generator: str,
        key: str,
        frames: list[np.ndarray],
        inputs: dict[str, Any],
        manifest_key: str = "",
    ) -> None:
        h, w = frames[0].shape[:2]
        strip = np.concatenate(frames, axis=1)
        buf = io.BytesIO()
        Image.fromarray(strip, "RGBA").save(buf, format="PNG", optimize=False)
        data = buf.getvalue()
        rel = f"{STORE_DIR}/{sprite}.{key[:12]}.png"
        atomic_write(self.root / rel, data, fsync=False, tmp_dir=self.tmp_dir)
        self.entries[sprite] = LockEntry(
            generator, key, rel, hashlib.sha256(data).hexdigest(), len(frames), w, h, dict(inputs), manifest_key
        )
        self.dirty = True

    def forget_except(self, sprites: set[str]) -> None:
        for name in list(self.entries):
            if name not in sprites:
                del self.entries[name]
                self.dirty = True

    def save(self) -> None:
        """Rewrite the lock (if anything changed), then drop unreferenced store files."""
        if self.dirty:
            doc = {
                "version": LOCK_VERSION,
                "sprite": {
                    name: {
                        "generator": e.generator,
                        "key": e.key,
                        "file": e.file,
                        "sha256": e.sha256,
                        "frames": e.frames,
                        "width": e.width,
                        "height": e.height,
                        "manifest_key": e.manifest_key,
                        "inputs": e.inputs,
                    }
                    for name, e in sorted(self.entries.items())
                },
            }
            header = b"# sparky.lock - generated by sparky-assets; commit it with sparky-generated/.\n"
            atomic_write(self.lock_path, header + tomli_w.dumps(doc).encode(), tmp_dir=self.tmp_dir)
            self.dirty = False
        if self.dir.is_dir():
            keep = {Path(e.file).name for e in self.entries.values()}
            for path in self.dir.glob("*.png"):
                if path.name not in keep:
                    path.unlink(missing_ok=True)
