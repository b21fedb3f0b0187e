"""Write a build's exports: only the files whose bytes changed, removing what is no
longer produced, all switched over together by the :class:`~.outputs.OutputLedger`
(with the generated store's changes), and every change recorded in the report.

Invariant: nothing outside the build's own output folders is removed (``ledger.owns``);
under ``--only`` the outputs of other atlases are left as they are.
"""

from __future__ import annotations

from pathlib import Path

from ..export.base import OutputFile
from ..manifest.schema import ExportSpec
from .fsutil import sha256_bytes
from .outputs import OutputLedger, PlannedWrite
from .report import BuildReport, ChangedAsset


def write_outputs(
    ledger: OutputLedger,
    root: Path,
    report: BuildReport,
    files: dict[Path, tuple[ExportSpec, str, OutputFile]],
    selected: set[str] | None,
    store: tuple[list, list] = ([], []),
) -> None:
    """Write what changed, remove what is no longer produced. ``selected`` (``--only``):
    outputs of other atlases are left alone. ``store``: generated-store writes and
    removals, switched over with the outputs."""
    writes, keep = [], {}
    for path, (target, rel, f) in sorted(files.items()):
        digest = sha256_bytes(f.data)
        meta = {
            "target": target.target,
            "path": rel,
            "kind": f.kind,
            "engine_path": f.engine_path,
            "sprites": list(f.sprites),
            "atlas": f.atlas,
            "sha256": digest,
        }
        if ledger.unchanged(path, digest, len(f.data)):
            keep[path] = meta
            report.unchanged += 1
            continue
        change = "modified" if path.exists() else "added"
        writes.append(PlannedWrite(path, f.data, meta))
        report.assets.append(
            ChangedAsset(target.target, rel, f.engine_path, f.kind, change, digest, f.sprites, f.atlas)
        )
    remove = []
    for rel, meta in sorted(ledger.record.items()):
        path = root / rel
        if path in files:
            continue
        if selected is not None and meta.get("atlas") not in selected:
            keep[path] = meta
            continue
        if not ledger.owns(rel):  # not in an output folder, or changed since: not ours
            continue
        remove.append(path)
        report.assets.append(
            ChangedAsset(
                meta.get("target", "sheets"),
                meta.get("path", rel),
                meta.get("engine_path"),
                meta.get("kind", "metadata"),
                "removed",
                "",
                tuple(meta.get("sprites", ())),
                meta.get("atlas"),
            )
        )
    ledger.commit(writes, keep, remove, extra_writes=store[0], extra_remove=store[1])
    report.written = [w.path for w in writes]
    report.removed = remove
