"""Where images run (--cluster): in this process, or in shards on a Dask cluster.

Checked and reached before any job is made or locked: an unreachable scheduler or a
missing extra must not leave a job (or a claimed inbox file) behind.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from retailpulse_cli.config.options import RunFlags

if TYPE_CHECKING:  # Dask is imported only when --cluster asks for it
    from retailpulse_cli.processing.dask_engine import ClusterSpec, DaskEngine


@dataclass(frozen=True)
class Cluster:
    """A Dask cluster to run on, and the images per task."""

    spec: ClusterSpec
    shard_size: int


def placement(flags: RunFlags) -> Cluster | None:
    """--cluster checked (syntax, Dask installed): None means this process."""
    from retailpulse_cli.processing.dask_engine import parse_cluster, require_dask

    resolved = flags.resolve(only={"cluster", "shard_size"})
    spec = parse_cluster(resolved.get("cluster"))
    if not spec.is_dask:
        return None
    require_dask()
    return Cluster(spec, int(resolved.get("shard_size")))


@contextlib.contextmanager
def engine_for(cluster: Cluster | None) -> Iterator[DaskEngine | None]:
    """The Dask cluster asked for, connected (or started) for the `with` block; None:
    this process."""
    if cluster is None:
        yield None
        return
    from retailpulse_cli.processing.dask_engine import DaskEngine

    with DaskEngine(cluster.spec, shard_size=cluster.shard_size) as engine:
        yield engine
