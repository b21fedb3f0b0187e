"""Switching a build's outputs over together: all or nothing, crash-safely.

Output files (and, for a build that generated art, the new ``sparky-generated/``
files and ``sparky.lock``) are first written completely to ``.sparky/staging/``
and made durable together (one ``syncfs`` on a local Linux filesystem, per-file and folder
fsyncs on FUSE and network filesystems: :func:`.fsutil.make_durable`),
after every destination folder has been checked to be inside the project and writable. The current version of every file about to be replaced or deleted is
hard-linked into ``.sparky/staging/old/``. Then a journal naming both sides of every
move (staged file → final path → saved old version) and every stale file to delete is
written atomically, and only then are the moves carried out with ``os.replace`` (store
files, pages, metadata, the lock last).

* A build that fails before the journal exists changes nothing.
* A failure in the middle of the switch (an I/O error, Ctrl-C) is rolled back at once
  from the saved old versions: the previous set of outputs is back, byte for byte.
* A process killed in the middle of the switch leaves the journal: :meth:`recover`,
  at the start of the next build, rolls it forward.

Every output file on disk is therefore always complete, and either the old or the new
version, and a failed build leaves ``sparky-generated/`` and ``sparky.lock`` as they
were.

``.sparky/outputs.json`` records what the last build wrote (path → SHA-256, size,
mtime) so that a no-op build can tell, from a ``stat``, that nothing needs writing.

Both bookkeeping files are untrusted (a project can ship them): every path in them is
checked by :mod:`.safepath` before it is touched; a corrupt or unsafe file is reported
as a warning and discarded (the build then compares outputs by content).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidInput
from . import safepath
from .fsutil import atomic_write, io_failure, make_durable, sha256_bytes

_ORDER = {
    "store": -1,
    "texture": 0,
    "atlas-texture": 1,
    "sprite-frames": 1,
    "tileset": 1,
    "metadata": 2,
    "atlas": 3,
    "lock": 99,
}
JOURNAL_VERSION = 2
STATE_FILE_LIMIT = 256 << 20
"""Largest outputs.json / journal.json read back (a bigger one is corrupt)."""
_META_TYPES = {
    "target": str,
    "path": str,
    "kind": str,
    "engine_path": (str, type(None)),
    "atlas": (str, type(None)),
    "sha256": str,
}


@dataclass(frozen=True)
class PlannedWrite:
    path: Path
    data: bytes
    meta: dict
    """Recorded with the file: ``target``, ``path``, ``kind``, ``engine_path``, ``sprites``, ``atlas``."""

    @property
    def kind(self) -> str:
        return self.meta.get("kind", "")


class OutputLedger:
    def __init__(self, state_dir: Path, root: Path, *, durable: bool = True, output_roots: list[Path] = ()):
        """``output_roots``: the folders this build writes outputs into; the only places
        (with ``sparky-generated/`` and ``sparky.lock``) a journal may move files to or
        delete them from, and where stale outputs are deleted."""
        self.durable = durable
        self.root = root
        self.output_roots = list(output_roots)
        self.state_dir = state_dir
        safepath.require_inside(root, state_dir, what="bookkeeping folder")
        self.record_path = state_dir / "outputs.json"
        self.journal_path = state_dir / "journal.json"
        self.staging = state_dir / "staging"
        self.warnings: list[str] = []
        self.record: dict[str, dict] = self._load_record()
        self.keep_staging = False
        """A ``watch`` build: the staging folder (the old versions, linked for a rollback)
        is removed by :meth:`clean_staging` after the messages, or by the next :meth:`recover`."""

    def clean_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    # -- reading the bookkeeping -------------------------------------------------

    def _load_record(self) -> dict[str, dict]:
        if not os.path.lexists(self.record_path):
            return {}
        if not self.record_path.is_file() or self.record_path.is_symlink():
            safepath.discard(self.record_path)
            self.warnings.append(".sparky/outputs.json was not a file; rebuilt from the outputs on disk")
            return {}
        try:
            raw = json.loads(safepath.read_regular(self.record_path, STATE_FILE_LIMIT))
        except (ValueError, OSError, RecursionError) as exc:
            self.warnings.append(
                f".sparky/outputs.json is unreadable ({_short(exc)}); rebuilt from the outputs on disk"
            )
            return {}
        return self._checked_record(raw, ".sparky/outputs.json")

    def _checked_record(self, raw: object, name: str) -> dict[str, dict]:
        """The entries of a record that are safe and well-formed; the rest reported."""
        if not isinstance(raw, dict):
            self.warnings.append(f"{name} is not a table of outputs; rebuilt from the outputs on disk")
            return {}
        record, dropped, folders = {}, [], {}
        for rel, meta in raw.items():
            path = safepath.record_path(self.root, rel, file=str(self.state_dir / name), folders=folders)
            if path is None or not _well_formed(meta):
                dropped.append(repr(rel)[:80])
                continue
            record[rel] = meta
        if dropped:
            self.warnings.append(
                f"{name}: ignored {len(dropped)} entries that are malformed or name paths outside the outputs "
                f"({', '.join(dropped[:3])}{', …' if len(dropped) > 3 else ''})"
            )
        return record

    def recover(self) -> int:
        """Finish an interrupted switch-over (or discard an unfinished staging)."""
        moved = 0
        for leftover in (self.staging, self.state_dir / "tmp"):
            if leftover.is_symlink() or (os.path.lexists(leftover) and not leftover.is_dir()):
                safepath.discard(leftover)  # planted: a link (never followed) or a file
        if os.path.lexists(self.journal_path):
            journal = self._load_journal()
            if journal is not None:
                moves, removes, record = journal
                for staged, final, _old in moves:
                    if staged.exists():
                        _mkdirs(self.root, final.parent)
                        os.replace(staged, final)
                        moved += 1
                for stale, _old in removes:
                    stale.unlink(missing_ok=True)
                self.record = self._stat_record(record)
                self._save_record(self.record)
            safepath.discard(self.journal_path)
        for leftover in (self.staging, self.state_dir / "tmp"):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
        return moved

    def _load_journal(self) -> tuple[list, list, dict] | None:
        """The journal's moves, removals and record, every path checked; None (with a
        warning) when it is corrupt or names anything outside the project."""
        name = str(self.journal_path)
        try:
            doc = json.loads(safepath.read_regular(self.journal_path, STATE_FILE_LIMIT))
            if not isinstance(doc, dict) or not isinstance(doc.get("moves"), list):
                raise ValueError("not a journal")
            staging = safepath.resolve(self.staging)
            moves = []
            for entry in doc["moves"]:
                if not isinstance(entry, list) or len(entry) not in (2, 3):
                    raise ValueError(f"bad move {entry!r:.80}")
                staged = safepath.journal_path(self.root, entry[0], file=name)
                if safepath.resolve(staged).parent != staging:
                    raise ValueError(f"staged file {entry[0]!r:.80} is not in .sparky/staging")
                final = self._journal_target(entry[1], name)
                moves.append((staged, final, None))
            removes = []
            for entry in doc.get("remove", []):
                stale = entry[0] if isinstance(entry, list) and entry else entry
                removes.append((self._journal_target(stale, name), None))
            record = self._checked_record(doc.get("record", {}), ".sparky/journal.json record")
        except (ValueError, TypeError, OSError, RecursionError, InvalidInput) as exc:
            self.warnings.append(
                f".sparky/journal.json was discarded ({_short(exc)}); outputs are compared by content instead"
            )
            return None
        return moves, removes, record

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def unchanged(self, path: Path, digest: str, size: int) -> bool:
        """The file on disk already has these bytes: known from the record when its size
        and mtime match, else by hashing it (touched files, a lost or recovered record)."""
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return False
        if st.st_size != size or not path.is_file():
            return False
        entry = self.record.get(self._rel(path))
        if (
            entry is not None
            and entry["sha256"] == digest
            and entry.get("mtime_ns") == st.st_mtime_ns
            and entry.get("size") == size
        ):
            return True
        try:
            return sha256_bytes(path.read_bytes()) == digest
        except OSError:
            return False

    def owns(self, rel: str) -> bool:
        """The stale output ``rel`` may be deleted: it lies in one of this build's output
        folders, and it is gone already or still holds exactly what a build wrote there
        (its recorded hash). A file changed since, or one elsewhere in the project (a
        planted ``outputs.json`` naming a source), is left alone."""
        entry = self.record.get(rel)
        path = self.root / rel
        if entry is None or not self._in_outputs(path):
            return False
        if not os.path.lexists(path):
            return True
        try:
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                return False
            if entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
                return True
            return sha256_bytes(safepath.read_regular(path, STATE_FILE_LIMIT)) == entry["sha256"]
        except (OSError, ValueError):
            return False

    def _in_outputs(self, path: Path) -> bool:
        return any(r in path.parents for r in self.output_roots)

    def _journal_target(self, value: object, name: str) -> Path:
        """A journal's destination or stale file: in an output folder, the store, or the lock."""
        path = safepath.journal_path(self.root, value, file=name)
        if self._in_outputs(path) or path == self.root / safepath.LOCK_NAME:
            return path
        if path.parent == self.root / safepath.STORE_DIR and path.suffix == ".png":
            return path
        raise ValueError(f"{self._rel(path) if self.root in path.parents else path} is not an output")

    def _stat_record(self, record: dict[str, dict]) -> dict[str, dict]:
        for rel, entry in record.items():
            try:
                st = (self.root / rel).stat()
                entry["size"], entry["mtime_ns"] = st.st_size, st.st_mtime_ns
            except OSError:
                entry["size"], entry["mtime_ns"] = -1, -1
        return record

    def _save_record(self, record: dict[str, dict]) -> None:
        atomic_write(
            self.record_path,
            json.dumps(record, sort_keys=True).encode(),
            fsync=self.durable,
            tmp_dir=self.state_dir / "tmp",
        )

    # -- switching over ----------------------------------------------------------

    def commit(
        self,
        writes: list[PlannedWrite],
        keep: dict[Path, dict],
        remove: list[Path],
        *,
        extra_writes: list[PlannedWrite] = (),
        extra_remove: list[Path] = (),
    ) -> None:
        """Stage ``writes``, journal, switch over, and record the new state.

        ``keep`` maps the unchanged outputs to their record entries (kept as they are).
        ``extra_writes`` / ``extra_remove`` switch over with the outputs but are not
        outputs (the generated store and ``sparky.lock``)."""
        if not writes and not remove and not extra_writes and not extra_remove:
            record = self._stat_record({self._rel(p): dict(meta) for p, meta in keep.items()})
            if record != self.record:  # touched files or new metadata: refresh the record only
                self._save_record(record)
                self.record = record
            return
        everything = sorted([*writes, *extra_writes], key=lambda w: (_ORDER.get(w.kind, 9), str(w.path)))
        stale = [*remove, *extra_remove]
        safepath.output_paths(self.root, [w.path for w in everything] + stale)
        created = self._prepare_folders([w.path.parent for w in everything] + [p.parent for p in stale])
        try:
            moves, removes = self._stage(everything, stale)
        except BaseException:
            shutil.rmtree(self.staging, ignore_errors=True)
            _remove_empty(created)
            raise
        new_record = {self._rel(p): dict(meta) for p, meta in keep.items()}
        for w in writes:
            new_record[self._rel(w.path)] = {**w.meta, "sha256": sha256_bytes(w.data)}
        journal = {
            "version": JOURNAL_VERSION,
            "moves": [[self._rel(s), self._rel(f), self._rel(o) if o else None] for s, f, o in moves],
            "remove": [[self._rel(p), self._rel(o)] for p, o in removes],
            # sizes/mtimes are filled after the moves; the journal's record is hash-only
            "record": {k: {**v, "size": -1, "mtime_ns": -1} for k, v in new_record.items()},
        }
        self._write_state(self.journal_path, json.dumps(journal).encode())
        self._switch(moves, removes, created)
        self._stat_record(new_record)
        self._save_record(new_record)
        self.record = new_record
        self.journal_path.unlink(missing_ok=True)
        if not self.keep_staging:
            self.clean_staging()

    def _prepare_folders(self, folders: list[Path]) -> list[Path]:
        """Create missing destination folders and prove each one writable (a probe file
        made and removed) before anything is staged. Returns the folders created."""
        created: list[Path] = []
        try:
            for folder in sorted(set(folders)):
                created += _mkdirs(self.root, folder)
                try:
                    fd, probe = tempfile.mkstemp(prefix=".sparky-probe.", dir=folder)
                    os.close(fd)
                    os.unlink(probe)
                except OSError as exc:
                    raise io_failure(exc, folder, "cannot write into output folder", root=self.root) from None
        except BaseException:
            _remove_empty(created)
            raise
        return created

    def _stage(self, writes: list[PlannedWrite], stale: list[Path]):
        """Staged copies of the new files and saved links to the old ones."""
        old_dir = self.staging / "old"
        old_dir.mkdir(parents=True, exist_ok=True)
        moves, removes = [], []
        for i, w in enumerate(writes):
            staged = self.staging / f"{i:06d}"
            try:
                with open(staged, "wb") as fh:
                    fh.write(w.data)
            except OSError as exc:
                raise io_failure(exc, w.path, "cannot stage", root=self.root) from None
            moves.append((staged, w.path, self._save_old(w.path, old_dir / f"w{i:06d}")))
        if self.durable and moves:  # every staged file on disk before the journal names it
            try:
                make_durable(self.staging, [staged for staged, _, _ in moves])
            except OSError as exc:
                raise io_failure(exc, self.staging, "cannot stage", root=self.root) from None
        for i, path in enumerate(stale):
            old = self._save_old(path, old_dir / f"r{i:06d}")
            if old is not None:
                removes.append((path, old))
        return moves, removes

    def _save_old(self, path: Path, backup: Path) -> Path | None:
        """Keep the current version of ``path`` for a rollback (a hard link; a copy where
        links are not possible). None when there is no current version."""
        if not os.path.lexists(path):
            return None
        try:
            os.link(path, backup, follow_symlinks=False)
        except OSError:
            try:
                shutil.copy2(path, backup, follow_symlinks=False)
            except OSError as exc:
                raise io_failure(exc, backup, "cannot keep the previous version of an output", root=self.root) from None
        return backup

    def _switch(self, moves, removes, created: list[Path]) -> None:
        # each step is marked done *before* it is taken: undoing a step that did not
        # happen is harmless (the old version is restored onto itself, a new file that
        # was never created is not there to remove), while a Ctrl-C landing between a
        # rename and its bookkeeping would otherwise leave that one file switched
        done_moves, done_removes = [], []
        try:
            for staged, final, old in moves:
                done_moves.append((final, old))
                os.replace(staged, final)
            for path, old in removes:
                done_removes.append((path, old))
                path.unlink(missing_ok=True)
        except BaseException as exc:
            problems = self._roll_back(done_moves, done_removes)
            _remove_empty(created)
            if not problems:  # back to the old set: the journal no longer describes anything
                self.journal_path.unlink(missing_ok=True)
                shutil.rmtree(self.staging, ignore_errors=True)
            if isinstance(exc, OSError):
                where = exc.filename or (done_moves[-1][0] if done_moves else self.root)
                raise io_failure(
                    exc,
                    Path(where),
                    "switching outputs over failed; the previous outputs were restored",
                    root=self.root,
                ) from None
            raise

    @staticmethod
    def _roll_back(done_moves, done_removes) -> list[str]:
        problems = []
        for path, old in reversed(done_removes):
            try:
                os.replace(old, path)
            except OSError as exc:
                problems.append(f"{path}: {exc}")
        for final, old in reversed(done_moves):
            try:
                if old is not None:
                    os.replace(old, final)
                else:
                    final.unlink(missing_ok=True)
            except OSError as exc:
                problems.append(f"{final}: {exc}")
        return problems

    def _write_state(self, path: Path, data: bytes) -> None:
        atomic_write(path, data, fsync=self.durable, tmp_dir=self.state_dir / "tmp")


def _well_formed(meta: object) -> bool:
    if not isinstance(meta, dict):
        return False
    for key, kind in _META_TYPES.items():
        if key in meta and not isinstance(meta[key], kind):
            return False
    if not isinstance(meta.get("sha256"), str):
        return False
    sprites = meta.get("sprites", [])
    return isinstance(sprites, list) and all(isinstance(s, str) for s in sprites)


def _mkdirs(root: Path, folder: Path) -> list[Path]:
    """``mkdir -p`` inside the project; the folders it created, outermost first."""
    missing = []
    probe = folder
    while not probe.exists() and probe != root and root in probe.parents:
        missing.append(probe)
        probe = probe.parent
    for f in reversed(missing):
        try:
            f.mkdir()
        except FileExistsError:
            pass
        except OSError as exc:
            raise io_failure(exc, f, "cannot create output folder", root=root) from None
    return list(reversed(missing))


def _remove_empty(folders: list[Path]) -> None:
    for f in reversed(folders):
        try:
            f.rmdir()
        except OSError:
            pass


def _short(exc: BaseException) -> str:
    if isinstance(exc, InvalidInput):
        return exc.diagnostics[0].message
    return str(exc)[:200]
