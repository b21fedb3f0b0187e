"""Switching a build's outputs over together, crash-safely.

Output files are first written completely to ``.sparky/staging/`` (fsynced). Then a
journal listing every move (staged file → final path) and every stale output to delete
is written atomically, and only then are the moves carried out with ``os.replace``
(pages before metadata). A build that dies before the journal exists changes nothing
(its staging folder is discarded next time); one that dies after is rolled forward by
:func:`recover` at the start of the next build. Every output file on disk is therefore
always complete, and either the old or the new version.

``.sparky/outputs.json`` records what the last build wrote (path → SHA-256, size,
mtime) so that a no-op build can tell, from a ``stat``, that nothing needs writing.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from .fsutil import atomic_write, sha256_bytes

_ORDER = {"texture": 0, "atlas-texture": 1, "sprite-frames": 1, "metadata": 2, "atlas": 3}


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
    def __init__(self, state_dir: Path, root: Path, *, durable: bool = True):
        self.durable = durable
        self.state_dir = state_dir
        self.root = root
        self.record_path = state_dir / "outputs.json"
        self.journal_path = state_dir / "journal.json"
        self.staging = state_dir / "staging"
        self.record: dict[str, dict] = {}
        if self.record_path.exists():
            try:
                self.record = json.loads(self.record_path.read_text())
            except ValueError:
                self.record = {}

    def recover(self) -> int:
        """Finish an interrupted switch-over (or discard an unfinished staging)."""
        moved = 0
        if self.journal_path.exists():
            try:
                journal = json.loads(self.journal_path.read_text())
            except ValueError:
                journal = None
            if journal is not None:
                for staged, final in journal["moves"]:
                    if os.path.exists(staged):
                        Path(final).parent.mkdir(parents=True, exist_ok=True)
                        os.replace(staged, final)
                        moved += 1
                for stale in journal["remove"]:
                    Path(stale).unlink(missing_ok=True)
                self.record = self._stat_record(journal["record"])
                atomic_write(
                    self.record_path, json.dumps(self.record, sort_keys=True).encode(), tmp_dir=self.state_dir / "tmp"
                )
            self.journal_path.unlink(missing_ok=True)
        for leftover in (self.staging, self.state_dir / "tmp"):
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
        return moved

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def unchanged(self, path: Path, digest: str, size: int) -> bool:
        """The file on disk already has these bytes: known from the record when its size
        and mtime match, else by hashing it (touched files, a lost or recovered record)."""
        try:
            st = path.stat()
        except FileNotFoundError:
            return False
        if st.st_size != size:
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

    def _stat_record(self, record: dict[str, dict]) -> dict[str, dict]:
        for rel, entry in record.items():
            try:
                st = (self.root / rel).stat()
                entry["size"], entry["mtime_ns"] = st.st_size, st.st_mtime_ns
            except FileNotFoundError:
                entry["size"], entry["mtime_ns"] = -1, -1
        return record

    def commit(self, writes: list[PlannedWrite], keep: dict[Path, dict], remove: list[Path]) -> None:
        """Stage ``writes``, journal, switch over, and record the new state.

        ``keep`` maps the unchanged outputs to their record entries (kept as they are)."""
        if not writes and not remove:
            record = self._stat_record({self._rel(p): dict(meta) for p, meta in keep.items()})
            if record != self.record:  # touched files or new metadata: refresh the record only
                atomic_write(
                    self.record_path,
                    json.dumps(record, sort_keys=True).encode(),
                    fsync=self.durable,
                    tmp_dir=self.state_dir / "tmp",
                )
                self.record = record
            return
        self.staging.mkdir(parents=True, exist_ok=True)
        moves = []
        for i, w in enumerate(sorted(writes, key=lambda w: (_ORDER.get(w.kind, 9), str(w.path)))):
            staged = self.staging / f"{i:06d}_{w.path.name}"
            with open(staged, "wb") as fh:
                fh.write(w.data)
                if self.durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            moves.append((str(staged), str(w.path)))
        new_record = {self._rel(p): dict(meta) for p, meta in keep.items()}
        for w in writes:
            new_record[self._rel(w.path)] = {**w.meta, "sha256": sha256_bytes(w.data)}
        journal = {"moves": moves, "remove": [str(p) for p in remove], "record": {}}
        # sizes/mtimes are filled after the moves; the journal's record is hash-only
        journal["record"] = {k: {**v, "size": -1, "mtime_ns": -1} for k, v in new_record.items()}
        atomic_write(
            self.journal_path, json.dumps(journal).encode(), fsync=self.durable, tmp_dir=self.state_dir / "tmp"
        )
        for staged, final in moves:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, final)
        for stale in remove:
            stale.unlink(missing_ok=True)
        self._stat_record(new_record)
        atomic_write(
            self.record_path,
            json.dumps(new_record, sort_keys=True).encode(),
            fsync=self.durable,
            tmp_dir=self.state_dir / "tmp",
        )
        self.record = new_record
        self.journal_path.unlink(missing_ok=True)
        shutil.rmtree(self.staging, ignore_errors=True)
