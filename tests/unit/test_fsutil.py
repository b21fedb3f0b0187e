"""make_durable: one syncfs where it can be trusted; on FUSE, network filesystems and
kernels before 5.8 (where syncfs may return before the data is safe, or not report the
error), every file is fsynced, then the folders holding them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparky_assets.pipeline import fsutil


def mountinfo_for(folder: Path, kind: str, point: str | None = None) -> str:
    """A mount table: the root on ext4 and ``folder`` (or ``point``) on ``kind``, both of
    ``folder``'s device (as a FUSE or NFS mount of it would show)."""
    st = os.stat(folder)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    mounted = (point or str(folder)).replace(" ", "\\040")
    return (
        f"27 1 {dev} / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
        f"22 27 0:21 / /proc rw,relatime - proc proc rw\n"
        f"90 27 {dev} / {mounted} rw,nosuid - {kind} remote:/x rw,user_id=0\n"
    )


@pytest.mark.parametrize(
    "kind, release, reliable",
    [
        ("ext4", "6.8.0-45-generic", True),
        ("xfs", "5.8.0", True),
        ("ext4", "5.4.0-150-generic", False),  # syncfs did not report writeback errors yet
        ("fuse.sshfs", "6.8.0", False),
        ("fuse", "6.8.0", False),
        ("nfs4", "6.8.0", False),
        ("cifs", "6.8.0", False),
        ("9p", "6.8.0", False),
    ],
)
def test_syncfs_is_trusted_only_on_local_filesystems_of_recent_kernels(tmp_path, kind, release, reliable):
    table = mountinfo_for(tmp_path, kind)
    assert fsutil.mount_type(tmp_path / "sub" / "..", table) == kind
    assert fsutil.syncfs_is_reliable(tmp_path, table, release) is reliable


def test_the_deepest_mount_of_the_folders_device_names_its_type(tmp_path):
    spaced = tmp_path / "a folder"
    spaced.mkdir()
    table = mountinfo_for(spaced, "fuse.rclone", point=str(spaced))
    assert fsutil.mount_type(spaced, table) == "fuse.rclone"  # \040 in the table is a space
    assert fsutil.mount_type(tmp_path, table) == "ext4"  # above the FUSE mount: the root's
    assert fsutil.mount_type(tmp_path, "garbage\n- -\n") is None


class Fsyncs:
    """Records what ``os.fsync`` was called on (by inode), then calls the real one."""

    def __init__(self, monkeypatch):
        self.inodes: list[int] = []
        real = os.fsync

        def fsync(fd):
            self.inodes.append(os.fstat(fd).st_ino)
            return real(fd)

        monkeypatch.setattr(os, "fsync", fsync)


def written(folder: Path, count: int = 3) -> list[Path]:
    files = []
    for i in range(count):
        path = folder / f"{i:06d}"
        path.write_bytes(b"staged %d" % i)
        files.append(path)
    return files


def test_the_fallback_fsyncs_every_file_and_then_their_folder(tmp_path, monkeypatch):
    files = written(tmp_path)
    fsyncs = Fsyncs(monkeypatch)
    fsutil.make_durable(tmp_path, files, use_syncfs=False)
    inodes = [f.stat().st_ino for f in files]
    assert fsyncs.inodes[: len(files)] == inodes
    assert fsyncs.inodes[len(files) :] == [tmp_path.stat().st_ino]


@pytest.mark.skipif(fsutil._syncfs is None, reason="no syncfs on this platform")
def test_a_fuse_mount_takes_the_fallback_and_a_local_disk_one_syncfs(tmp_path, monkeypatch):
    files = written(tmp_path)
    real = fsutil.syncfs_is_reliable
    calls = []
    syncfs = fsutil._syncfs
    monkeypatch.setattr(fsutil, "_syncfs", lambda fd: calls.append(fd) or syncfs(fd))
    for kind, syncfs_used in (("fuse.sshfs", False), ("ext4", True)):
        table = mountinfo_for(tmp_path, kind)
        monkeypatch.setattr(fsutil, "_reliable_by_device", {})
        monkeypatch.setattr(fsutil, "syncfs_is_reliable", lambda folder, table=table: real(folder, table, "6.8.0"))
        fsyncs = Fsyncs(monkeypatch)
        calls.clear()
        fsutil.make_durable(tmp_path, files)
        assert bool(calls) is syncfs_used
        assert len(fsyncs.inodes) == (0 if syncfs_used else len(files) + 1)
