"""Ingest: sources -> sampled keyframes -> features -> region store -> indexes.

Decoding runs in a pool of producer threads (PyAV and zarr release the GIL), a bounded queue per
source keeps memory flat, and the main thread computes each clip's features as it arrives
(Numba kernels, overlapping the decoding of the next source) and commits them in batches.
Sources are consumed in the order given, so clip rows are the same on every run. A bad source or clip is recorded with its reason and the job goes on; everything
committed before a crash stays committed, and a rerun skips it (same content digest).
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import ClipdexError, InputError, SourceError, StoreError
from engine.ids import validate_clip_id
from engine.sources.metadata import (
    MetadataResolver,
    MetadataTable,
    compile_patterns,
    parse_timezone,
)
from engine.sovereignty.regions import Home
from engine.store.region import FinishedRecording, NewClip, RegionStore, fault_point
from engine.types import ClipSample

_END = object()
_ITEM_END = object()  # yielded by _samples after each item's last clip


@dataclass(frozen=True)
class _Skip:
    """A producer's word that its source is a recording already wholly ingested."""

    recording_id: str


@dataclass
class IngestReport:
    region: str
    job_id: str
    ingested: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source or clip, reason)
    keyframes: int = 0
    seconds: float = 0.0
    index_seconds: float = 0.0
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (source or table, message)
    metadata_updated: int = 0  # committed clips whose metadata this job corrected
    drives_changed: int = 0  # clips whose derived drive changed
    #: seconds of the writer thread: waiting for decoded clips (or a cluster's results),
    #: computing features (local executor), committing to the store
    stages: dict[str, float] = field(default_factory=lambda: {"waiting": 0.0, "features": 0.0,
                                                              "store": 0.0})
    executor: str = "local"

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def bound(self) -> str:
        """What limited the job: ``decode`` (``workers`` on a cluster) when the writer thread
        spent at least half its time waiting for results, else the larger of ``features`` and
        ``store``; ``-`` when nothing was read."""
        st = self.stages
        busy = st["waiting"] + st["features"] + st["store"]
        if busy <= 0 or not self.keyframes:
            return "-"
        if st["waiting"] >= busy / 2:
            return "decode" if self.executor == "local" else "workers"
        return "features" if st["features"] >= st["store"] else "store"

    def as_dict(self) -> dict:
        return {
            "region": self.region,
            "job_id": self.job_id,
            "ingested": len(self.ingested),
            "skipped": len(self.skipped),
            "failed": len(self.failed),
            "keyframes": self.keyframes,
            "seconds": round(self.seconds, 3),
            "index_seconds": round(self.index_seconds, 3),
            "stages": {k: round(v, 3) for k, v in self.stages.items()},
            "bound": self.bound,
            "warned": len(self.warnings),
            "metadata_updated": self.metadata_updated,
            "drives_changed": self.drives_changed,
            "failures": [{"item": i, "error": e} for i, e in self.failed],
            "skips": [{"clip_id": i, "reason": r} for i, r in self.skipped],
            "warnings": [{"item": i, "warning": w} for i, w in self.warnings],
        }


@dataclass
class IngestOptions:
    keyframe_hz: float = 2.0
    clip_seconds: float | None = None
    image_fps: float = 10.0
    batch_size: int = 64
    workers: int = 0  # 0 = one producer per core
    thresholds: dict | None = None  # trigger thresholds
    force: bool = False  # re-ingest sources that were forgotten (erasure requests)
    wait: float = 0.0  # seconds to wait for another writer of the region before refusing
    threads: int = 0  # decoding threads per video file (0 = FFmpeg picks, one per core)
    decode: str = "auto"  # video decode strategy: engine.sources.video.DECODE_STRATEGIES
    telemetry_map: dict[str, str] | None = None  # channel -> sidecar column, e.g. {"time": "ts_ms"}
    telemetry_units: dict[str, str] | None = None  # {"time": "ms", "speed": "km/h"}
    # Numba threads for the features while sources stream in (0 = auto: 1 when a video is being
    # decoded -- its decoder threads already hold the cores, and a parallel region that waits for
    # a busy core costs a scheduler time slice, 10-30 ms a call measured on 2 cores, vs 0.02 ms
    # single-threaded -- else all)
    feature_threads: int = 0
    metadata: str | Path | None = None  # --metadata table (CSV, JSON Lines, Parquet)
    name_patterns: list[str] | None = None  # --name-pattern regexes, tried before the defaults
    name_defaults: bool = True  # also try engine.sources.metadata.DEFAULT_NAME_PATTERNS
    timezone: str | None = None  # zone of times without one (file names); default UTC
    drive_gap_s: float = 10.0  # consecutive recordings of one device this close are one drive
    commit_every_s: float = 5.0  # commit a partial batch after this long, so a kill loses little
    follow_links: bool = False  # follow links out of the source tree (files read where they point)
    learned: bool = False  # also compute each clip's learned embedding (engine.scenes.learned)

    def __post_init__(self) -> None:
        from engine.sources.video import check_strategy

        check_strategy(self.decode)  # a bad --decode fails before any file is read
        if self.learned:  # a missing extra or calibration is named before any file is read
            from engine.scenes.learned import load_calibration, load_model

            load_model(), load_calibration()


def _producer(item, opts: IngestOptions, out: queue.Queue, stop: threading.Event,
              done: Callable[[], None] | None = None, done_recordings: dict | None = None) -> None:
    from engine.sources import iter_clips

    try:
        if done_recordings and getattr(item, "remote", False):
            from engine.sources.remote import object_key

            for recording_id, split in done_recordings.get(object_key(item.path, item.version),
                                                           {}).items():
                if _same_split(split, opts.clip_seconds):
                    out.put(_Skip(recording_id))  # same URL, ETag and size: nothing read
                    return
        elif done_recordings and item.kind == "video" \
                and str(Path(item.path).resolve()) in done_recordings:
            from engine.sources.video import file_digest

            digest = file_digest(Path(item.path))
            split = done_recordings[str(Path(item.path).resolve())].get(digest)
            if split is not None and _same_split(split, opts.clip_seconds):
                out.put(_Skip(digest))  # nothing to decode: every clip of it is committed
                return
        for sample in iter_clips(item, keyframe_hz=opts.keyframe_hz, clip_seconds=opts.clip_seconds,
                                 image_fps=opts.image_fps, threads=opts.threads,
                                 strategy=opts.decode,
                                 telemetry_map=opts.telemetry_map,
                                 telemetry_units=opts.telemetry_units):
            while not stop.is_set():
                try:
                    out.put(sample, timeout=0.2)
                    break
                except queue.Full:
                    continue
            if stop.is_set():
                return
    except ClipdexError as err:
        out.put(err)
    except Exception as err:  # an unexpected decoder failure is still this source's failure
        out.put(SourceError(f"{getattr(item, 'path', item)}: {type(err).__name__}: {err}"))
    finally:
        if done is not None:
            done()  # decoding is over: the next source may start before this one is consumed
        out.put(_END)


def _same_split(done: float, clip_seconds: float | None) -> bool:
    """A recording cut with ``done`` seconds (NaN: whole) is cut the same with ``clip_seconds``."""
    import math

    if clip_seconds is None:
        return math.isnan(done)
    return not math.isnan(done) and abs(done - float(clip_seconds)) < 1e-9


def _samples(items: Sequence, opts: IngestOptions, stop: threading.Event,
             while_decoding: Callable[[], None] | None = None,
             done_recordings: dict | None = None) -> Iterable[tuple[object, object]]:
    """(item, ClipSample | error) in item order, ``workers`` sources decoding at a time.

    A source starts as soon as a worker is free -- when a producer finishes decoding, not when
    the consumer has taken its last clip -- so the features of one file's last clip overlap the
    decoding of the next file; at most ``workers + 1`` sources are started and unconsumed.
    (Committing whenever the next sample is not ready yet was tried: +3% CPU, no faster.)
    ``while_decoding()`` runs once the first producers have started.
    """
    workers = opts.workers or os.cpu_count() or 1
    queues: list[queue.Queue | None] = [None] * len(items)
    lock = threading.Lock()
    state = {"next": 0, "running": 0, "consumed": 0}

    def start_more(finished: bool = False) -> None:
        with lock:
            state["running"] -= finished
            while (state["next"] < len(items) and state["running"] < workers
                   and state["next"] <= state["consumed"] + workers and not stop.is_set()):
                i = state["next"]
                state["next"] += 1
                state["running"] += 1
                queues[i] = queue.Queue(maxsize=8)
                threading.Thread(target=_producer, daemon=True,
                                 args=(items[i], opts, queues[i], stop,
                                       lambda: start_more(True), done_recordings)).start()

    start_more()
    if while_decoding is not None:
        while_decoding()
    for i, item in enumerate(items):
        q = queues[i]
        assert q is not None  # started by start_more when item i - 1 was consumed
        while True:
            got = q.get()
            if got is _END:
                break
            yield item, got
        yield item, _ITEM_END
        queues[i] = None
        with lock:
            state["consumed"] += 1
        start_more()


def ingest(
    home: Home,
    region_name: str,
    sources: Sequence[str | Path],
    opts: IngestOptions | None = None,
    progress: Callable[[dict], None] | None = None,
    command: str = "clipdex ingest",
    executor=None,
) -> IngestReport:
    """Ingest ``sources`` (files, folders, globs, zarr stores, ``s3://`` URLs) into
    ``region_name``.

    ``executor`` (:class:`engine.ingest.executors.DaskExecutor`) decodes and computes features on a
    Dask cluster; by default threads of this process do. Either way this process is the region's
    single writer and commits the results in source order, so the catalog is the same."""
    from engine.index import ensure_indexes
    from engine.ingest.drives import link_drives

    opts = opts or IngestOptions()
    region = home.region(region_name)
    t0 = time.perf_counter()
    report = IngestReport(region.name, uuid.uuid4().hex[:12])
    store = RegionStore.open(region, create=True)
    with store, store.writer(command, wait=opts.wait):
        store.close_interrupted_jobs()
        store.start_job("ingest", report.job_id)
        job = _IngestJob(store, report, opts, progress)
        items = job.discover(sources)
        numba_threads = _feature_threads(opts, items)
        known_recordings = _with_object_versions(store, store.finished_sources(), items)
        stop = threading.Event()
        if executor is not None:
            report.executor = "dask"
            results = executor.results(items, opts, region.name, known_recordings)
            store.features  # noqa: B018  (open or create the arrays while workers decode)
        else:  # open (or create) the feature arrays while the first source decodes, not after
            results = _local_results(items, opts, region.name, stop, known_recordings,
                                     numba_threads, while_decoding=lambda: store.features,
                                     stages=report.stages)
        try:
            job.consume(results)
        finally:
            stop.set()
        if job.resolver.table is not None:
            report.warnings += [(str(job.resolver.table.path), w)
                                for w in job.resolver.table.unused_rows()]
        report.drives_changed = link_drives(store, opts.drive_gap_s)
        t1 = time.perf_counter()
        ensure_indexes(store)
        report.index_seconds = time.perf_counter() - t1
        report.seconds = time.perf_counter() - t0
        store.finish_job(report.job_id, "ok" if report.ok else "failed", report.as_dict())
    return report


class _IngestJob:
    """One ingest job's writer side: what it admits, batches and commits, in source order.

    Features are computed as each clip arrives (the main thread works while the producer
    decodes the next file); commits are batched, and happen at least every
    ``opts.commit_every_s``."""

    def __init__(self, store: RegionStore, report: IngestReport, opts: IngestOptions,
                 progress: Callable[[dict], None] | None):
        self.store, self.report, self.opts, self.progress = store, report, opts, progress
        self.resolver = _resolver(opts)
        self.batch: list[NewClip] = []
        self.finished: list[FinishedRecording] = []
        self.seen_in_job: set[str] = set()
        self.seen_ids: set[str] = set()
        self.last_commit = time.monotonic()
        self.learned = None  # engine.scenes.learned_space.SpaceAdder with --learned
        if opts.learned:
            from engine.scenes.learned_space import SpaceAdder

            self.learned = SpaceAdder(store, "clipdex ingest --learned")
        self.state = {"items_total": 0, "items_done": 0, "clips": 0, "skipped": 0, "failed": 0,
                      "keyframes": 0}

    def discover(self, sources: Sequence[str | Path]) -> list:
        """The sources' items (failures recorded, passed-over files listed as skipped)."""
        from engine.sources import discover

        items, passed_over = [], []
        for item in discover([str(s) for s in sources], skipped=passed_over,
                             follow_links=self.opts.follow_links):
            if item.kind == "error":
                self.report.failed.append((str(item.path), item.message))
                self.store.record_error(self.report.job_id, str(item.path), item.message)
            elif item.remote:  # an s3:// URL is stored as given
                items.append(item)
            else:  # sources are stored as absolute resolved paths: valid from any directory
                items.append(replace(item, path=item.path.resolve()))
        if self.resolver.table is not None:
            self.report.warnings += [(str(self.resolver.table.path), w)
                                     for w in self.resolver.table.warnings]
        self.report.skipped += [(str(p), why) for p, why in passed_over]
        self.state.update(items_total=len(items), failed=len(self.report.failed))
        return items

    def _tell(self) -> None:
        if self.progress:
            self.progress(dict(self.state))

    def fail(self, what: str, reason: str) -> None:
        self.report.failed.append((what, reason))
        self.store.record_error(self.report.job_id, what, reason)
        self.state["failed"] += 1

    def skip(self, what: str, why: str) -> None:
        self.report.skipped.append((what, why))
        self.state["skipped"] += 1

    def flush(self) -> None:
        """Commit the batch (and the recordings it completes); a store failure stops the job
        with what committed kept."""
        self.last_commit = time.monotonic()
        if not self.batch and not self.finished:
            return
        good = list(self.batch)
        t = time.perf_counter()
        try:
            self.store.append_clips(good, self.report.job_id, finished=list(self.finished))
        except StoreError as err:  # disk full, read-only mount: stop, keep what committed
            self.report.failed += [(c.source, f"not committed: {err}") for c in good]
            with contextlib.suppress(Exception):
                self.store.finish_job(self.report.job_id, "failed", self.report.as_dict())
            raise
        finally:
            self.report.stages["store"] += time.perf_counter() - t
        self.report.ingested += [c.clip_id for c in good]
        if self.learned is not None:
            # learned vectors go to their space after the clips' commit: a kill in between leaves
            # them to ``clipdex embeddings compute``
            t = time.perf_counter()
            for c in good:
                if c.learned is not None:
                    self.learned.add(c.clip_id, c.learned)
            self.report.stages["store"] += time.perf_counter() - t
        n_kf = sum(len(c.keyframe_hashes) for c in good)
        self.report.keyframes += n_kf
        self.state["clips"] += len(good)
        self.state["keyframes"] += n_kf
        self.batch.clear()
        self.finished.clear()
        self._tell()

    def consume(self, results) -> None:
        """Take each (item, result) in source order: clips, skips, errors, ends of items."""
        current: _ItemState | None = None
        stages = self.report.stages
        results = iter(results)
        while True:
            t, features = time.perf_counter(), stages["features"]
            try:
                item, got = next(results)
            except StopIteration:
                break
            finally:  # the time to get it, less features computed on the way (local executor)
                stages["waiting"] += time.perf_counter() - t - (stages["features"] - features)
            fault_point("decode")
            if current is None or current.item is not item:
                current = _ItemState(item)
            if got is _ITEM_END:
                self._item_end(item, current)
            elif isinstance(got, _Skip):
                self.skip(str(item.path), "already ingested (same recording, same split); "
                          "nothing decoded")
                self.report.metadata_updated += _correct_metadata(self.store, self.resolver, item,
                                                                  got.recording_id)
            elif isinstance(got, _ClipError):
                current.failed = True
                self.fail(got.where, got.message)
            elif isinstance(got, ClipdexError):
                current.failed = True
                self.fail(str(item.path), str(got))
            elif self._admit(got, item, current):
                self.batch.append(got)
                if len(self.batch) >= self.opts.batch_size or \
                        time.monotonic() - self.last_commit >= self.opts.commit_every_s:
                    self.flush()
        self.flush()
        if self.learned is not None:
            self.learned.flush()
        self._tell()

    def _item_end(self, item, current: _ItemState) -> None:
        if current.recording_id and not current.failed and item.kind == "video":
            clip_s = self.opts.clip_seconds
            self.finished.append(FinishedRecording(
                current.recording_id, _source_name(item.path), current.end_s,
                float("nan") if clip_s is None else float(clip_s)))
        self.state["items_done"] += 1
        self._tell()

    def _admit(self, clip: NewClip, item, current: _ItemState) -> bool:
        """Whether ``clip`` is new to the region: not repeated in this job, not erased, not
        already ingested, with an id of its own."""
        store, opts = self.store, self.opts
        current.recording_id = current.recording_id or clip.recording_id or clip.digest
        current.end_s = max(current.end_s, clip.source_offset_s + clip.duration_s)
        for w in _apply_metadata(clip, self.resolver, current):
            self.report.warnings.append((str(item.path), w))
        if clip.digest in self.seen_in_job:
            self.skip(clip.clip_id, "same content earlier in this job")
            return False
        if not opts.force and store.is_erased([clip.digest, clip.recording_id,
                                               str((clip.meta or {}).get("content_key") or "")]):
            # named by neither id nor path: the job log keeps nothing of erased content, and
            # the recording is not recorded as ingested
            self.skip("(erased)", "forgotten (erasure request: this content or its recording "
                      "was erased); re-ingest only with --force")
            current.failed = True
            return False
        known = store.known_digests([clip.digest])
        if clip.digest in known:
            cid, status = known[clip.digest]
            if status == "active":
                self.skip(clip.clip_id, f"already ingested as {cid}")
                if not current.corrected:
                    current.corrected = True
                    self.report.metadata_updated += _correct_metadata(
                        store, self.resolver, item, current.recording_id)
                return False
            if not opts.force:
                self.skip(clip.clip_id, f"forgotten as {cid} (erasure request); re-ingest only "
                          "with --force")
                current.failed = True  # not wholly in the region: never skip it unread
                return False
            store.compact_forgotten()  # erase the old rows for good, then drop the tombstone
            store.drop_tombstone(clip.digest)
        if store.has_clip_id(clip.clip_id) and opts.clip_seconds is not None \
                and _same_recording(store, clip):
            # the recording cut again with another split: its pieces get their own ids
            clip.clip_id = f"{clip.clip_id}-split{float(opts.clip_seconds):g}s"
        if clip.clip_id in self.seen_ids or store.has_clip_id(clip.clip_id):
            current.failed = True
            self.fail(clip.source, f"clip id {clip.clip_id!r} already exists in region "
                      f"{store.region.name!r} with other content; rename the source or ingest it "
                      "from another folder so it gets another id")
            return False
        self.seen_in_job.add(clip.digest)
        self.seen_ids.add(clip.clip_id)
        return True


def _feature_threads(opts: IngestOptions, items: Sequence) -> int:
    """Numba threads for computing features during the job (see ``IngestOptions``)."""
    if opts.feature_threads > 0:
        return opts.feature_threads
    return 1 if any(getattr(item, "kind", None) == "video" for item in items) else 0


@dataclass(frozen=True)
class _ClipError:
    """A clip that failed after decoding (bad id, another region's clip, bad keyframes)."""

    where: str
    message: str


def _sample_to_clip(sample: ClipSample, opts: IngestOptions, region_name: str) -> NewClip | _ClipError:
    """Validate one decoded clip and compute its features (in this thread)."""
    import math

    from engine.ingest.features import compute_features

    try:
        validate_clip_id(sample.clip_id)
        if sample.region and sample.region != region_name:
            raise InputError(
                f"clip {sample.clip_id} names region {sample.region!r} in its metadata but "
                f"is being ingested into {region_name!r}; ingest it with --region {sample.region}")
        (clip,) = compute_features([sample], opts.thresholds)
        if opts.learned:
            from engine.scenes.learned import clip_vectors

            clip.learned = clip_vectors([sample.keyframes])[0]
    except ClipdexError as err:
        return _ClipError(sample.source, str(err))
    clip.meta = dict(clip.meta or {})
    if sample.telemetry is not None and math.isfinite(sample.telemetry.epoch_start):
        clip.meta["telemetry_epoch_start"] = sample.telemetry.epoch_start
    # fields a source carried itself (zarr attrs): metadata resolution ranks them
    clip.meta["source_fields"] = {k: v for k, v in (
        ("drive_id", sample.drive_id), ("vehicle_id", sample.vehicle_id),
        ("start_time", sample.start_time - sample.source_offset_s)) if v == v and v != ""}
    return clip


@contextlib.contextmanager
def _numba_threads(n: int):
    """``n`` Numba threads in this thread while the block runs (0 = leave as set)."""
    if n <= 0:
        yield
        return
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        numba.set_num_threads(before)


def _local_results(items: Sequence, opts: IngestOptions, region_name: str, stop: threading.Event,
                   done_recordings: dict, numba_threads: int,
                   while_decoding: Callable[[], None] | None = None,
                   stages: dict[str, float] | None = None):
    """(item, NewClip | _ClipError | ClipdexError | _Skip | _ITEM_END) in item order: threads of
    this process decode, this thread computes each clip's features as it arrives (its seconds
    added to ``stages['features']``)."""
    stages = stages if stages is not None else {"features": 0.0}
    for item, got in _samples(items, opts, stop, while_decoding=while_decoding,
                              done_recordings=done_recordings):
        if isinstance(got, ClipSample):
            t = time.perf_counter()
            with _numba_threads(numba_threads):
                got = _sample_to_clip(got, opts, region_name)
            stages["features"] += time.perf_counter() - t
        yield item, got


def item_results(item, opts: IngestOptions, region_name: str, done_recordings: dict | None) -> list:
    """Everything one source gives, decoded and computed here (a Dask task): NewClips and
    errors, or a _Skip. Decoding runs in a helper thread with a bounded queue, so memory holds
    a few clips' keyframes, not the file's."""
    out: list = []
    q: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()
    worker = threading.Thread(target=_producer, args=(item, opts, q, stop, None, done_recordings),
                              daemon=True)
    worker.start()
    try:
        while (got := q.get()) is not _END:
            out.append(_sample_to_clip(got, opts, region_name) if isinstance(got, ClipSample) else got)
    finally:
        stop.set()
        worker.join()
    return out


@dataclass
class _ItemState:
    """What the consumer learnt of the source being read."""

    item: object
    recording_id: str = ""
    end_s: float = 0.0
    failed: bool = False
    #: RecordingMetadata per recording of the source (a video file is one recording; a zarr
    #: store holds many), resolved at the recording's first clip
    metadata: dict = field(default_factory=dict)
    corrected: bool = False  # committed clips of it were given the current metadata
    warned: set = field(default_factory=set)


def _resolver(opts: IngestOptions) -> MetadataResolver:
    tz = parse_timezone(opts.timezone)
    table = MetadataTable.load(opts.metadata, tz) if opts.metadata else None
    return MetadataResolver(table, compile_patterns(opts.name_patterns, opts.name_defaults), tz)


def _apply_metadata(clip: NewClip, resolver: MetadataResolver, current: _ItemState) -> list[str]:
    """Give ``clip`` its recording's metadata (resolved once per recording); returns warnings not
    yet reported for this source (the source's own decode and telemetry warnings included)."""
    import math

    meta = clip.meta if clip.meta is not None else {}
    clip.source = _source_name(clip.source)
    key = clip.recording_id or clip.digest
    if key not in current.metadata:
        tel = meta.get("telemetry_epoch_start")
        tel_start = float(tel) - clip.source_offset_s if tel is not None else math.nan
        current.metadata[key] = resolver.resolve(
            _source_arg(clip.source), container_creation=meta.get("container_creation_time", ""),
            telemetry_start=tel_start, given=meta.get("source_fields"))
    meta.pop("source_fields", None)
    md = current.metadata[key]
    clip.drive_id = md.drive_id
    clip.vehicle_id = md.vehicle_id
    clip.camera = md.camera
    clip.start_time = md.start_time + clip.source_offset_s if math.isfinite(md.start_time) \
        else float("nan")
    meta["provenance"] = dict(md.provenance)
    if md.tags:
        meta["tags"] = dict(md.tags)
    clip.meta = meta
    new = []
    messages = list(md.warnings) + list(meta.get("warnings", []))
    messages += [f"telemetry: {w}" for w in meta.get("telemetry_issues", [])]
    for w in messages:
        if w not in current.warned:
            current.warned.add(w)
            new.append(w)
    return new


def _source_name(path) -> str:
    """How the catalog names a source: an absolute resolved path, or an ``s3://`` URL as is."""
    from engine.sources.remote import is_object_url

    return path if is_object_url(path) else str(Path(path).resolve())


def _source_arg(source):
    """``source`` for the metadata resolver: a ``Path``, or an ``s3://`` URL as a ``str``."""
    from engine.sources.remote import is_object_url

    return source if is_object_url(source) else Path(source)


def _with_object_versions(store: RegionStore, known: dict, items: Sequence) -> dict:
    """``known`` (source -> {recording id: split}) plus, for each listed object whose URL is a
    wholly ingested recording with the same ETag and size (recorded in its clips' metadata),
    an entry under :func:`~engine.sources.remote.object_key`: those objects are skipped
    unread."""
    from engine.sources.remote import object_key

    out = dict(known)
    for item in items:
        if not getattr(item, "remote", False) or item.path not in known:
            continue
        for recording_id, split in known[item.path].items():
            clips = store.clip_records(recording=recording_id)
            seen = (clips[0]["meta"] or {}).get("object") if clips else None
            if seen and f"{seen.get('etag')}:{seen.get('size')}" == item.version:
                out.setdefault(object_key(item.path, item.version), {})[recording_id] = split
    return out


def _same_recording(store: RegionStore, clip: NewClip) -> bool:
    """The committed clip named like ``clip`` was cut from the same recording."""
    got = store.clip_records([store.clip_row(clip.clip_id)]) if store.has_clip_id(clip.clip_id) else []
    return bool(got) and got[0]["recording_id"] == (clip.recording_id or clip.digest)


def _correct_metadata(store: RegionStore, resolver: MetadataResolver, item, recording_id: str) -> int:
    """Apply what the metadata table and given name patterns now say to the committed clips of a
    recording that is not decoded again; returns the number of clips changed."""
    import math

    if resolver.table is None and not resolver.patterns:
        return 0
    md = resolver.resolve(_source_arg(item.path))
    fields = {k: v for k, v in md.fields().items() if md.provenance.get(k) in ("metadata", "name")}
    if not fields and not md.tags:
        return 0
    updates = []
    for c in store.clip_records(recording=recording_id):
        want = dict(fields)
        if "start_time" in want:
            want["start_time"] = want["start_time"] + float(c["source_offset_s"])
        current_start = c["start_time"] if c["start_time"] is not None else math.nan
        differs = any(
            (abs(v - current_start) > 1e-6 if math.isfinite(current_start) else True)
            if k == "start_time" else v != c[k] for k, v in want.items())
        if differs or (md.tags and md.tags != c["meta"].get("tags")):
            prov = {k: md.provenance[k] for k in fields}
            updates.append((int(c["row"]), {**want, "provenance": prov, "tags": md.tags}))
    return store.update_clip_metadata(updates) if updates else 0
