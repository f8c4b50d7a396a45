"""Where ingest's decoding and feature work runs: this process (the default) or a Dask cluster.

Dask (``clipdex[dask]``): ``--workers N`` starts a ``distributed.LocalCluster`` of N worker
processes with one thread each; ``--scheduler tcp://HOST:PORT`` joins a running cluster, which
must be declared for the region in ``regions.toml`` (``schedulers = ["tcp://..."]``) so that a
region's clips are never processed outside it. Each task is one source file: it decodes the file
and computes its clips' features on one thread (one decoder thread and one Numba thread per
worker thread: no oversubscription; kernels load from the disk cache) and returns feature rows;
only source paths, feature rows and counts travel.
This process stays the region's single writer and commits in source order, so the catalog is
the same as with the local executor, and a worker killed mid-task only makes Dask run the task
again elsewhere (nothing was committed by it). At most ``2 x workers + 2`` tasks are in flight:
fast decoders cannot flood the writer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.errors import InputError, SourceError

#: seconds to wait for a scheduler before giving up with an error
CONNECT_TIMEOUT_S = 5.0


def _task(item, opts, region_name: str, done_recordings) -> list:
    """A Dask task: one source, decoded and computed on one of the worker's threads. A worker
    with N threads runs N tasks at once, so each task keeps to one thread: one Numba thread
    and, unless ``--threads`` says otherwise, one decoder thread (N one-thread workers keep N
    cores busy and no more)."""
    import dataclasses

    import numba

    from engine.ingest.pipeline import item_results

    numba.set_num_threads(1)
    if opts.threads == 0:
        opts = dataclasses.replace(opts, threads=1)
    return item_results(item, opts, region_name, done_recordings)


@dataclass
class DaskExecutor:
    """A Dask client plus, when this job started it, its LocalCluster."""

    client: object
    cluster: object | None = None
    address: str = ""

    @classmethod
    def start(cls, region, *, scheduler: str | None = None, workers: int = 0) -> DaskExecutor:
        """Join ``scheduler`` (declared for ``region``) or start ``workers`` local processes."""
        try:
            from distributed import Client, LocalCluster
        except ImportError as err:
            raise InputError("the Dask executor needs the dask extra: pip install "
                             "'clipdex[dask]'") from err
        if (scheduler is None) == (workers <= 0):
            raise InputError("give exactly one of --scheduler ADDRESS or --workers N")
        if scheduler is not None:
            if scheduler not in region.schedulers:
                declared = ", ".join(region.schedulers) or "none"
                raise InputError(
                    f"scheduler {scheduler} is not declared for region {region.name!r} "
                    f"(declared: {declared}); a region's clips are processed only on its own "
                    f"clusters: add it to schedulers = [...] of [regions.{region.name}] in "
                    "regions.toml, or use --workers N for a cluster on this machine")
            try:
                client = Client(scheduler, timeout=f"{CONNECT_TIMEOUT_S}s")
            except (OSError, TimeoutError) as err:
                raise InputError(f"cannot reach the Dask scheduler {scheduler} within "
                                 f"{CONNECT_TIMEOUT_S:g} s ({err}); start it or check the "
                                 "address") from err
            return cls(client, None, scheduler)
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
        return cls(Client(cluster), cluster, cluster.scheduler_address)

    @property
    def n_workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    def results(self, items: Sequence, opts, region_name: str,
                done_recordings: dict) -> Iterator[tuple[object, object]]:
        """(item, result) in item order, like the local executor's stream; each item's results
        end with the ingest module's item-end marker."""
        from engine.ingest.pipeline import _ITEM_END

        ahead = 2 * self.n_workers + 2
        futures: dict[int, object] = {}
        submitted = 0

        def submit_more(upto: int) -> int:
            n = submitted
            while n < len(items) and n < upto:
                futures[n] = self.client.submit(_task, items[n], opts, region_name,
                                                done_recordings, pure=False)
                n += 1
            return n

        submitted = submit_more(ahead)
        try:
            for i, item in enumerate(items):
                fut = futures.pop(i)
                try:
                    got = fut.result()
                except Exception as err:  # the task died (a worker killed it each time it ran)
                    got = [SourceError(f"{item.path}: its task failed on the Dask cluster "
                                       f"({type(err).__name__}: {err}); the file may crash the "
                                       "decoder: re-export it or ingest it alone to see why")]
                submitted = submit_more(i + 1 + ahead)
                for r in got:
                    yield item, r
                yield item, _ITEM_END
        finally:
            for fut in futures.values():
                fut.cancel()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
