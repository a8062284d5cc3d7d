"""Unpacking a cached .tgz / .tar.gz (tokenizers) into a directory, atomically and safely."""
import os
import shutil
import tarfile

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")


def is_archive(path):
    return path.endswith(ARCHIVE_SUFFIXES)


def unpacked_dir(archive_path):
    """Where `archive_path` is unpacked: beside it, without the suffix."""
    for suffix in ARCHIVE_SUFFIXES:
        if archive_path.endswith(suffix):
            return archive_path[: -len(suffix)]
    raise ValueError(f"not an archive: {archive_path}")


def content_root(directory):
    """The single top-level folder of an unpacked archive if there is exactly one, else the folder itself."""
    entries = [e for e in os.listdir(directory) if not e.startswith(".")]
    if len(entries) == 1 and os.path.isdir(os.path.join(directory, entries[0])):
        return os.path.join(directory, entries[0])
    return directory


def unpack(archive_path):
    """Extract into a temp folder, then rename it into place (readers see all of it or nothing).
    Call it holding the archive's node lock."""
    target = unpacked_dir(archive_path)
    if os.path.isdir(target):
        return target
    parent, base = os.path.split(target)
    for stale in os.listdir(parent):  # left by a process killed mid-unpack (the caller holds the node lock)
        if stale.startswith(base + ".tmp"):
            shutil.rmtree(os.path.join(parent, stale), ignore_errors=True)
    tmp = f"{target}.tmp{os.getpid()}"
    os.makedirs(tmp)
    try:
        with tarfile.open(archive_path, "r:*") as tar:
            # The 'data' filter refuses absolute paths, '..', links out of the folder and device files.
            tar.extractall(tmp, filter="data")
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
