"""Where a multi-node run may write: the shared-storage guard.

Since Ray 2.7, Tune and Train no longer sync results from worker nodes to the head: every node
writes checkpoints and results straight to ``storage_path``. On a cluster with more than one
node, that path must therefore be something every node sees: a cloud bucket URI
(``s3://``, ``gs://``, ...) or a shared filesystem (NFS, EFS, Filestore, Lustre, ...).
:func:`check_shared_output` refuses a path that exists only on the head's local disk, before the
run starts, instead of letting workers write into directories that vanish with their node.

A filesystem deepmorning cannot recognise as shared (a bind mount of an NFS export, say) is
declared shared with ``DEEPMORNING_SHARED_PATHS=/mnt/a:/mnt/b``.
"""

from __future__ import annotations

import os
from pathlib import Path

from deepmorning.platform.errors import DeepmorningError

#: Filesystem types (as in /proc/mounts) that several machines mount at once.
SHARED_FS_TYPES = frozenset(
    {
        "nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "glusterfs",
        "fuse.glusterfs", "ceph", "fuse.ceph", "fuse.ceph-fuse", "cephfs", "9p", "virtiofs",
        "fuse.s3fs", "fuse.gcsfuse", "fuse.mountpoint-s3", "fuse.goofys", "fuse.juicefs",
        "fuse.sshfs", "fuse.blobfuse", "fuse.blobfuse2", "wekafs", "fuse.weka", "panfs",
    }
)

#: Environment variable listing extra path prefixes that the user declares shared.
SHARED_PATHS_ENV = "DEEPMORNING_SHARED_PATHS"


def is_uri(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a storage URI such as ``s3://bucket/runs`` (``file://`` is local)."""
    text = str(path)
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.isidentifier() and scheme.lower() != "file"


def local_path(path: str | os.PathLike) -> Path:
    """A local path, from a plain path or a ``file://`` URI."""
    text = str(path)
    if text.lower().startswith("file://"):
        from urllib.parse import unquote, urlparse

        return Path(unquote(urlparse(text).path))
    return Path(text).expanduser().absolute()


def _mounts() -> list[tuple[str, str]]:
    """``(mount point, filesystem type)`` pairs of this machine, longest mount point first."""
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    pairs = []
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            mount = fields[1].replace("\\040", " ")
            pairs.append((mount, fields[2]))
    return sorted(pairs, key=lambda pair: len(pair[0]), reverse=True)


def filesystem_of(path: str | os.PathLike) -> tuple[str, str]:
    """``(mount point, filesystem type)`` holding ``path`` (which need not exist yet)."""
    target = Path(path).expanduser().absolute()
    for mount, fstype in _mounts():
        if target == Path(mount) or Path(mount) in target.parents:
            return mount, fstype
    return "/", "unknown"


def _declared_shared(path: Path) -> bool:
    prefixes = [p for p in os.environ.get(SHARED_PATHS_ENV, "").split(os.pathsep) if p]
    return any(path == Path(p).absolute() or Path(p).absolute() in path.parents for p in prefixes)


def is_shared_path(path: str | os.PathLike) -> bool:
    """Whether every node of a cluster can be expected to see ``path``."""
    if is_uri(path):
        return True
    target = local_path(path)
    if _declared_shared(target):
        return True
    return filesystem_of(target)[1] in SHARED_FS_TYPES


def cluster_node_count() -> int:
    """Alive nodes of the connected Ray cluster; 1 when this process is not connected."""
    import ray

    if not ray.is_initialized():
        return 1
    return sum(1 for node in ray.nodes() if node.get("Alive"))


def check_shared_output(path: str | os.PathLike, num_nodes: int | None = None) -> None:
    """Refuse a multi-node run whose output ``path`` only exists on the head node.

    ``num_nodes`` defaults to the alive nodes of the connected Ray cluster. A single node, a
    storage URI, a shared filesystem or a prefix listed in ``DEEPMORNING_SHARED_PATHS`` pass.
    """
    nodes = cluster_node_count() if num_nodes is None else num_nodes
    if nodes <= 1 or is_shared_path(path):
        return
    target = local_path(path)
    mount, fstype = filesystem_of(target)
    raise DeepmorningError(
        f"output path {target} is on this node's local disk ({fstype} at {mount}) but the "
        f"cluster has {nodes} nodes, whose results would be scattered or lost; use a shared "
        "filesystem (NFS, EFS, Filestore) or a bucket URI such as s3://BUCKET/runs or "
        f"gs://BUCKET/runs (docs/clusters.md), or set {SHARED_PATHS_ENV}={target} if it is "
        "shared"
    )
