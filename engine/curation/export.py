"""Export a selection manifest's clips to a training-ready zarr v3 dataset, and read it back.

Layout (``clipdex-export-v1``): a zarr v3 group whose attrs name the format, region, manifest
(path and digest), frames mode and size; one child group per clip, named by its clip id, with

- ``frames``       uint8[T, H, W, 3] RGB (chunks of up to 8 frames);
- ``frame_times``  float64[T], seconds from the clip's start;
- ``telemetry/``   ``time`` float64[M] (seconds from the clip's start) and float32 ``speed``
  (m/s), ``accel`` (m/s^2), ``yaw_rate`` (rad/s), ``steering`` (rad), NaN where missing; absent
  when the source has no telemetry;
- attrs ``clip_id, region, source, span, split, reason, detail, drive_id, fps, frames_mode`` and,
  written last, ``complete = true``.

Frames come from the clip's source as the catalog records it (``clips.source``): zarr clip stores
(``<store>/<clip id>``) are read directly; video files are decoded with PyAV from the clip's
``source_offset_s`` for ``duration_s`` (the frames whose presentation time lies in that span);
image folders are read with Pillow (times from ``index.csv``/``frames.json`` or the catalog's
frame rate). ``frames="keyframes"`` exports, for each of the clip's keyframe times in the catalog
(2 Hz by default), the *nearest decoded frame* (ties -> earlier) at full resolution: real frames,
not the tent-filtered, downsampled blends ingest hashes. ``size=(W, H)`` resizes every frame with
Pillow (box filter when shrinking, bilinear otherwise); rotation metadata of videos is not applied.

Resumable: a clip group is complete only once its ``complete`` attr is written, after all its
arrays. A rerun skips complete clips and rewrites partial ones. A clip that cannot be exported
(not in the region, forgotten, of another region, unreadable source) is recorded with its reason;
the others go on.

Sovereignty: the dataset is written inside the region's folder (default
``REGION/exports/<manifest stem>``). A destination outside it passes the egress gate
(:func:`engine.sovereignty.egress.open_target`): the region's policy must let ``frames`` leave for a place
outside every region (``export_to = ["*"]``; another region's folder is always refused), and the
audit line is appended before the first byte is written. Only granted fields go: without
``telemetry`` no telemetry group; without ``ids`` clip groups get opaque per-export ids (a keyed
hash of destination and clip id, resolvable only inside the region) and no clip or drive id;
without ``source_paths`` no source or manifest path; without ``scores`` no rarity detail or
selection reason.

Sources: the catalog stores each source as an absolute resolved path; a relative one (an older
catalog) is refused, and a source whose content digest no longer matches the one recorded at
ingest is refused (a video file or an image folder replaced or edited, a zarr clip rewritten), so
an export never reads other content than the one ingested.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from engine.errors import InputError, PolicyError, SourceError
from engine.sovereignty.regions import Home, Region
from engine.store.region import RegionStore, fault_point
from engine.types import TELEMETRY_CHANNELS

EXPORT_FORMAT = "clipdex-export-v1"
FRAMES_MODES = ("all", "keyframes")
VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts")
FRAMES_PER_CHUNK = 8
#: a frame belongs to a clip when ``offset - tol <= t < offset + duration - tol``
TIME_TOL_S = 1e-6


@dataclass
class ExportReport:
    region: str
    out: str
    manifest: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # already complete
    failed: list[tuple[str, str]] = field(default_factory=list)  # (clip id, reason)
    frames: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def as_dict(self) -> dict:
        return {"region": self.region, "out": self.out, "manifest": self.manifest,
                "written": len(self.written), "skipped_complete": len(self.skipped),
                "failed": [{"clip_id": c, "reason": r} for c, r in self.failed],
                "frames": self.frames, "bytes": self.bytes, "seconds": round(self.seconds, 3)}


@dataclass
class ClipFrames:
    frames: np.ndarray  # uint8[T, H, W, 3]
    frame_times: np.ndarray  # float64[T], from the clip's start
    telemetry: dict[str, np.ndarray] | None


def parse_size(text: str | None) -> tuple[int, int] | int | None:
    """``"224x224"`` -> (224, 224) (width, height); ``"640"`` -> 640 (longest side at most 640,
    aspect kept, never enlarged); None/""/"source" -> None (keep the source size)."""
    if not text or text.strip().lower() == "source":
        return None
    if text.strip().isdigit():
        side = int(text)
        if not 16 <= side <= 8192:
            raise InputError(f"--size {text!r}: a longest side of 16 to 8192 pixels, e.g. 640")
        return side
    w, sep, h = text.lower().partition("x")
    try:
        size = (int(w), int(h))
    except ValueError:
        size = (0, 0)
    if not sep or min(size) < 1 or max(size) > 8192:
        raise InputError(f"--size {text!r}: use WIDTHxHEIGHT in pixels, e.g. 320x180, or N for a "
                         "longest side of N, e.g. 640, or 'source'")
    return size


def fit_size(width: int, height: int, size: tuple[int, int] | int | None) -> tuple[int, int]:
    """The exported frame size of a ``width`` x ``height`` source under ``size`` (see
    :func:`parse_size`); even sizes when shrinking to a longest side."""
    if size is None:
        return width, height
    if not isinstance(size, int):
        return tuple(size)
    scale = size / max(width, height, 1)
    if scale >= 1:
        return width, height
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def estimate_export(home: Home, manifest: str | Path, *, region: str | None = None, frames: str = "all",
                    size: tuple[int, int] | int | None = None) -> dict:
    """What an export of ``manifest`` would write, from the catalog alone (nothing is decoded or
    written): clips, frames, the largest frame size and the uncompressed bytes (zarr's
    compression makes the dataset smaller; how much depends on the pictures)."""
    from engine.curation.manifest import read_manifest

    records = read_manifest(manifest)
    if region is None:
        named = sorted({str(r.get("region", "")) for r in records} - {""})
        region = named[0] if len(named) == 1 else None
    out = {"clips": 0, "frames": 0, "bytes": 0, "width": 0, "height": 0, "unknown": 0, "frames_mode": frames}
    if region is None:
        return out
    with RegionStore.open(home.region(region)) as store:
        meta = {r["clip_id"]: r.get("meta") or {} for r in store.clip_records()}
        for rec in records:
            cid = str(rec.get("clip_id", ""))
            if str(rec.get("region", region)) != region or cid not in meta:
                continue
            info = _clip_info(store, cid)
            m = meta[cid] if isinstance(meta[cid], dict) else {}
            w, h = int(m.get("width") or 0), int(m.get("height") or 0)
            fps = info["fps"] if info["fps"] is not None and math.isfinite(info["fps"]) else 0.0
            n = int(info["kf_count"]) if frames == "keyframes" else int(round(float(info["duration"]) * fps))
            out["clips"] += 1
            if not (w and h and n):
                out["unknown"] += 1
                continue
            w, h = fit_size(w, h, size)
            out["frames"] += n
            out["bytes"] += n * w * h * 3
            if w * h > out["width"] * out["height"]:
                out["width"], out["height"] = w, h
    return out


def default_out(region: Region, manifest: str | Path) -> Path:
    return region.path / "exports" / Path(manifest).stem


#: what an export carries: frames always; the rest only where the policy grants it
EXPORT_REQUIRED = ("frames",)
EXPORT_OPTIONAL = ("telemetry", "ids", "scores", "source_paths")


def check_destination(home: Home, region: Region, out: Path) -> str | None:
    """None when ``out`` lies inside the region's folder; else ``"*"`` when the policy lets
    ``frames`` go outside every region. Raises PolicyError (another region's folder always).
    Checks only: :func:`export_manifest` passes the gate, which also audits."""
    from engine.sovereignty import egress

    dest = egress.destination_of(home, region, out)
    if dest is not None:
        why = egress.refusal(region, EXPORT_REQUIRED, dest, operation=f"export to {out}",
                             hint=f", or export inside {region.path} (omit --out)")
        if why:
            raise PolicyError(why)
    return dest


def _manifest_digest(records: Sequence[dict]) -> str:
    h = hashlib.blake2b(digest_size=12)
    for r in records:
        h.update(f"{r.get('clip_id')}|{r.get('region')}|{r.get('split')}\n".encode())
    return h.hexdigest()


def export_manifest(
    home: Home,
    manifest: str | Path,
    *,
    region: str | None = None,
    out: str | Path | None = None,
    frames: str = "all",
    size: tuple[int, int] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> ExportReport:
    """Write the manifest's clips of ``region`` to a zarr dataset (see the module doc)."""
    from engine.curation.manifest import read_manifest

    t0 = time.perf_counter()
    if frames not in FRAMES_MODES:
        raise InputError(f"--frames {frames!r}: use one of {', '.join(FRAMES_MODES)}")
    records = read_manifest(manifest)
    if region is None:
        named = sorted({str(r.get("region", "")) for r in records} - {""})
        if len(named) != 1:
            raise InputError(f"manifest {manifest} names regions {named or 'none'}; pass --region")
        region = named[0]
    from engine.sovereignty import egress

    reg = home.region(region)
    out_path = Path(out) if out is not None else default_out(reg, manifest)
    check_destination(home, reg, out_path)
    out_path = out_path.expanduser().resolve()
    report = ExportReport(reg.name, str(out_path), str(manifest))
    want = {"format": EXPORT_FORMAT, "region": reg.name, "frames_mode": frames,
            "size": list(size) if isinstance(size, tuple) else size, "manifest_digest": _manifest_digest(records)}
    _check_root(out_path, want)  # refuse a foreign folder before anything is audited or written
    target = egress.open_target(home, reg, out_path, operation="export", fields=EXPORT_REQUIRED,
                                optional=EXPORT_OPTIONAL, records=len(records), kind="export")
    grant = set(target.fields)
    if "ids" not in grant:  # the manifest digest is a function of clip ids: key it to the region
        want["manifest_digest"] = egress.opaque_id(reg, str(out_path), want["manifest_digest"])
    root = _open_root(out_path, want, manifest if "source_paths" in grant else "")
    sources = _SourceCheck()
    with RegionStore.open(reg) as store:
        for k, rec in enumerate(records):
            cid = str(rec.get("clip_id", ""))
            if progress is not None:
                progress(k, len(records), cid)
            name = cid if "ids" in grant else egress.opaque_id(reg, str(out_path), cid)
            try:
                done = _export_one(store, root, rec, frames, size, report,
                                   _Shape(name, grant, sources))
            except (SourceError, InputError) as err:
                report.failed.append((name, str(err)))
                continue
            except Exception as err:  # an unreadable source fails this clip, never the others
                report.failed.append((name, f"{type(err).__name__}: {err}"))
                continue
            (report.written if done else report.skipped).append(name)
        if progress is not None:
            progress(len(records), len(records), "")
    report.seconds = time.perf_counter() - t0
    return report


def _check_root(out_path: Path, want: dict) -> None:
    """Refuse an ``out`` folder that holds something other than a clipdex export (read only)."""
    if out_path.exists() and not out_path.is_dir():
        raise InputError(f"--out {out_path} is a file; pass an empty or new folder")
    if out_path.is_dir() and not (out_path / "zarr.json").exists() and any(out_path.iterdir()):
        raise InputError(f"--out {out_path} exists and is not a clipdex export; pass an empty or new folder")


def _open_root(out_path: Path, want: dict, manifest) -> object:
    import zarr

    if (out_path / "zarr.json").exists():
        root = zarr.open_group(out_path, mode="a")
        have = {k: root.attrs.get(k) for k in want}
        if have != want:
            diff = ", ".join(f"{k}: {have[k]!r} -> {want[k]!r}" for k in want if have[k] != want[k])
            raise InputError(
                f"{out_path} already holds an export with other settings ({diff}); pass another "
                "--out or delete it to start over"
            )
        return root
    if out_path.exists() and any(out_path.iterdir()):
        raise InputError(f"--out {out_path} exists and is not a clipdex export; pass an empty or new folder")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    root = zarr.open_group(out_path, mode="w")
    root.attrs.update({**want, "manifest": str(manifest),
                       "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
    return root


#: clip attrs that carry each optional field
_ATTR_FIELDS = {"ids": ("clip_id", "drive_id"), "source_paths": ("source",), "scores": ("detail", "reason")}


def _clip_info(store: RegionStore, cid: str) -> dict:
    entry = store.clip_entry(cid)
    if entry is None:
        raise InputError(f"clip {cid!r} is not in region {store.region.name!r}; export a manifest "
                         "written by `clipdex select` for this region")
    if entry["status"] != "active":
        raise InputError(f"clip {cid!r} is {entry['status']} in region {store.region.name!r} (erasure or "
                         "damage); it is not exported: select again without it")
    info = dict(entry, clip_id=cid, recording_id="")
    if info["source"]:
        recs = store.clip_records([info["row"]])
        info["recording_id"] = recs[0]["recording_id"] if recs else ""
    return info


class _SourceCheck:
    """Content digests of sources (video files, image folders, zarr clips), computed once per
    export run and compared with the ones recorded at ingest."""

    def __init__(self) -> None:
        self.digests: dict[tuple[str, float], str] = {}

    def verify(self, info: dict, store: RegionStore) -> None:
        source = str(info["source"])
        if source.startswith("s3://"):
            raise SourceError(f"clip {info['clip_id']!r} was ingested from object storage ({source}); "
                              "export reads frames from local files only: leave it out (select "
                              "--exclude) or ingest its recording from local disk")
        if not Path(source).is_absolute():
            raise SourceError(f"source {source!r} of clip {info['clip_id']!r} is stored as a relative "
                              "path, which depends on the working directory; re-ingest the clip "
                              "(sources are stored as absolute resolved paths)")
        path = Path(source)
        if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
            from engine.sources.video import file_digest

            found = {self._digest(source, 0.0, lambda: file_digest(path))}
        elif path.is_dir() and not (path / "zarr.json").exists():
            from engine.sources.images import folder_digest

            fps = info["fps"] if info["fps"] is not None and math.isfinite(info["fps"]) else 10.0
            rates = dict.fromkeys((round(fps, 6), fps))  # the ingest rate, as the catalog keeps it
            found = {self._digest(source, r, lambda r=r: folder_digest(path, r)) for r in rates}
        else:
            from engine.sources.zarr_clips import clip_digest

            hz = _keyframe_hz(store, info)
            found = {self._digest(source, hz, lambda: clip_digest(source, keyframe_hz=hz))}
        if not found & {info["digest"], info["recording_id"]}:
            raise SourceError(f"{source}: content differs from the source ingested as clip "
                              f"{info['clip_id']!r} (digest changed); restore the original or "
                              "re-ingest it")

    def _digest(self, source: str, rate: float, compute: Callable[[], str]) -> str:
        if (source, rate) not in self.digests:
            self.digests[(source, rate)] = compute()
        return self.digests[(source, rate)]


def _keyframe_hz(store: RegionStore, info: dict) -> float:
    """The keyframe rate a clip was ingested at, from its first two keyframe times."""
    s, n = int(info["kf_start"]), int(info["kf_count"])
    if n < 2:
        return 2.0
    t = store.read_rows("keyframe_times", s, s + 2)
    step = float(t[1]) - float(t[0])
    return round(1.0 / step, 6) if step > 0 else 2.0


@dataclass
class _Shape:
    """How one clip is written: its group name and the fields the destination may receive."""

    name: str
    fields: set[str]
    sources: _SourceCheck


def _export_one(store: RegionStore, root, rec: dict, mode: str, size, report: ExportReport,
                shape: _Shape) -> bool:
    """Export one clip; False when it was already complete."""
    cid = str(rec.get("clip_id", ""))
    rec_region = str(rec.get("region", store.region.name))
    if rec_region != store.region.name:
        raise InputError(f"clip {cid!r} belongs to region {rec_region!r}, not {store.region.name!r}; "
                         f"export it with --region {rec_region} (its data stays in its region)")
    from engine.ids import validate_clip_id

    validate_clip_id(cid)
    name, grant = shape.name, shape.fields
    if name in root.group_keys() and root[name].attrs.get("complete") is True:
        return False
    info = _clip_info(store, cid)
    shape.sources.verify(info, store)
    targets = None
    if mode == "keyframes":
        s, n = int(info["kf_start"]), int(info["kf_count"])
        targets = np.asarray(store.read_rows("keyframe_times", s, s + n), np.float64)
    clip = read_clip_frames(info["source"], float(info["offset"]), float(info["duration"]),
                            fps=info["fps"], keyframe_times=targets, size=size)
    g = root.create_group(name, overwrite=True)  # a partial group from an interrupted run is redone
    t, h, w, _ = clip.frames.shape
    fr = g.create_array("frames", shape=clip.frames.shape, dtype="uint8",
                        chunks=(min(t, FRAMES_PER_CHUNK), h, w, 3))
    fr[...] = clip.frames
    fault_point("export_frames")  # crash tests: killed between a clip's arrays
    ft = g.create_array("frame_times", shape=(t,), dtype="float64")
    ft[...] = clip.frame_times
    if clip.telemetry is not None and "telemetry" in grant:
        tg = g.create_group("telemetry")
        for name, values in clip.telemetry.items():
            a = tg.create_array(name, shape=values.shape, dtype=values.dtype, chunks=(max(1, len(values)),))
            a[...] = values
    span = rec.get("span") or [rec.get("span_start"), rec.get("span_end")]
    detail = {k: rec[k] for k in ("rarity", "percentile", "distance", "quota") if rec.get(k) not in (None, "")}
    attrs = {
        "clip_id": cid, "region": store.region.name, "source": info["source"],
        "span": [float(x) for x in span] if None not in span else
        [float(info["offset"]), float(info["offset"]) + float(info["duration"])],
        "split": str(rec.get("split") or "train"), "reason": str(rec.get("reason") or ""),
        "detail": detail, "drive_id": info["drive_id"] or "",
        "fps": float(info["fps"]) if info["fps"] is not None and math.isfinite(info["fps"]) else None,
        "frames_mode": mode,
    }
    for f, keys in _ATTR_FIELDS.items():
        if f not in grant:
            for k in keys:
                attrs.pop(k)
    g.attrs.update(attrs)
    g.attrs["complete"] = True  # last: the clip counts only once everything above is on disk
    report.frames += t
    report.bytes += clip.frames.nbytes
    return True


# ---------------------------------------------------------------------------- reading sources
def read_clip_frames(source: str, offset_s: float, duration_s: float, *, fps=None,
                     keyframe_times: np.ndarray | None = None,
                     size: tuple[int, int] | None = None) -> ClipFrames:
    """All frames (or the frames nearest ``keyframe_times``) of one clip, from its source."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in VIDEO_EXTENSIONS:
        clip = _read_video(path, offset_s, duration_s)
    elif path.is_dir() and not (path / "zarr.json").exists():
        clip = _cut(_read_images(path, fps), offset_s, duration_s)
    else:
        clip = _read_zarr(source)
    if keyframe_times is not None and len(clip.frame_times):
        from engine.sources.sampling import pick_nearest

        idx = pick_nearest(clip.frame_times, np.asarray(keyframe_times, np.float64))
        clip = ClipFrames(clip.frames[idx], clip.frame_times[idx], clip.telemetry)
    if size is not None:
        size = fit_size(clip.frames.shape[2], clip.frames.shape[1], size)
    if size is not None and clip.frames.shape[2:0:-1] != tuple(size):
        clip = ClipFrames(_resize(clip.frames, size), clip.frame_times, clip.telemetry)
    return clip


def _cut(clip: ClipFrames, offset_s: float, duration_s: float) -> ClipFrames:
    """The span of a clip cut from a longer timeline (an image folder split by ``clip_seconds``),
    times re-based to the span's start; the whole clip when the span covers it."""
    if offset_s <= TIME_TOL_S and (not len(clip.frame_times) or clip.frame_times[-1] < duration_s - TIME_TOL_S):
        return clip
    keep = (clip.frame_times >= offset_s - TIME_TOL_S) & (clip.frame_times < offset_s + duration_s - TIME_TOL_S)
    tel = clip.telemetry
    if tel is not None and "time" in tel:
        rows = (tel["time"] >= offset_s) & (tel["time"] < offset_s + duration_s)
        tel = {k: (v[rows] - offset_s if k == "time" else v[rows]) for k, v in tel.items()}
    return ClipFrames(clip.frames[keep], clip.frame_times[keep] - offset_s, tel)


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    w, h = size
    shrink = w <= frames.shape[2] and h <= frames.shape[1]
    method = Image.Resampling.BOX if shrink else Image.Resampling.BILINEAR
    out = np.empty((len(frames), h, w, 3), np.uint8)
    for i, frame in enumerate(frames):
        out[i] = np.asarray(Image.fromarray(frame).resize((w, h), method))
    return out


def _telemetry_dict(tel) -> dict[str, np.ndarray] | None:
    if tel is None or len(tel.time) == 0:
        return None
    out = {"time": np.ascontiguousarray(tel.time, np.float64)}
    for j, name in enumerate(TELEMETRY_CHANNELS):
        out[name] = np.ascontiguousarray(tel.values[:, j], np.float32)
    return out


def _read_zarr(source: str) -> ClipFrames:
    import zarr

    from engine.sources.zarr_clips import _read_telemetry

    store_path, _, name = source.rpartition("/")
    try:
        root = zarr.open_group(store_path, mode="r")
        group = root[name] if name in root.group_keys() else root
        if "frames" not in group.array_keys():
            raise SourceError(f"{source}: no 'frames' array; the clip store changed since ingest")
        frames = np.asarray(group["frames"][:])
        times = np.asarray(group["frame_times"][:], np.float64)
        tel = _read_telemetry(group["telemetry"], source) if "telemetry" in group.group_keys() else None
    except SourceError:
        raise
    except Exception as err:
        raise SourceError(f"{source}: cannot read the clip's frames ({type(err).__name__}: {err}); "
                          "the source moved or is damaged: restore it and rerun the export") from err
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or len(times) != len(frames):
        raise SourceError(f"{source}: frames must be uint8[T,H,W,3] with T frame times")
    return ClipFrames(frames, times - times[0], _telemetry_dict(tel))


def _read_video(path: Path, offset_s: float, duration_s: float) -> ClipFrames:
    import av

    from engine.sources import discover
    from engine.sources.telemetry import align_telemetry, load_telemetry

    lo, hi = offset_s - TIME_TOL_S, offset_s + duration_s - TIME_TOL_S
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            tb = stream.time_base
            first_pts = next((f.pts for f in container.decode(stream) if f.pts is not None), 0)
            frames, times = _decode_span(container, stream, tb, first_pts, lo, hi, seek=offset_s > 1.0)
            if offset_s > 1.0 and (not times or times[0] > lo + 1.0 / max(1.0, float(stream.average_rate or 30))):
                container.seek(0)  # a seek that overshot the span: decode from the start
                frames, times = _decode_span(container, stream, tb, first_pts, lo, hi, seek=False)
    except av.FFmpegError as err:
        raise SourceError(f"{path}: cannot decode ({err}); the file changed since ingest") from err
    if not frames:
        raise SourceError(f"{path}: no frame in [{offset_s:.3f}, {offset_s + duration_s:.3f}) s; "
                          "the file changed since ingest")
    tel = None
    items = [i for i in discover([path]) if i.kind == "video"]
    if items and items[0].telemetry is not None:
        try:
            tel = align_telemetry(load_telemetry(items[0].telemetry), offset_s, offset_s + duration_s)
        except InputError:
            tel = None
    return ClipFrames(np.stack(frames), np.asarray(times, np.float64) - offset_s, _telemetry_dict(tel))


def _decode_span(container, stream, tb, first_pts, lo, hi, *, seek: bool):
    if seek:
        container.seek(int(first_pts + (lo - 1.0) / tb), stream=stream, backward=True)
    else:
        container.seek(0)
    frames, times, last = [], [], -math.inf
    for frame in container.decode(stream):
        if frame.pts is None:
            continue
        t = float((frame.pts - first_pts) * tb)
        if t >= hi:
            break
        if t < lo or t <= last:
            continue
        last = t
        frames.append(frame.to_ndarray(format="rgb24"))
        times.append(t)
    return frames, times


def _read_images(folder: Path, fps) -> ClipFrames:
    from PIL import Image

    from engine.sources import discover
    from engine.sources.images import _read_index, list_images
    from engine.sources.telemetry import align_telemetry, load_telemetry

    files = list_images(folder)
    index = _read_index(folder, files)
    if isinstance(index, dict):
        timed = sorted((t, f.name, f) for f in files if (t := index.get(f.name)) is not None)
        files, times = [f for *_, f in timed], np.array([t for t, *_ in timed], np.float64)
        keep = np.concatenate(([True], np.diff(times) > 0))
        files, times = [f for f, k in zip(files, keep, strict=True) if k], times[keep]
    else:
        rate = index if isinstance(index, float) else (fps if fps and math.isfinite(fps) else 10.0)
        times = np.arange(len(files), dtype=np.float64) / rate
    frames = []
    for f in files:
        with Image.open(f) as im:
            frames.append(np.asarray(im.convert("RGB")))
    if not frames:
        raise SourceError(f"{folder}: no image left; the folder changed since ingest")
    times = times - times[0]
    tel = None
    items = [i for i in discover([folder]) if i.kind == "images"]
    if items and items[0].telemetry is not None:
        try:
            tel = align_telemetry(load_telemetry(items[0].telemetry), 0.0, float(times[-1]) + 1.0)
        except InputError:
            tel = None
    return ClipFrames(np.stack(frames), times, _telemetry_dict(tel))


# ---------------------------------------------------------------------------- the reader
@dataclass
class ExportedClip:
    clip_id: str
    frames: np.ndarray  # uint8[T, H, W, 3] RGB
    frame_times: np.ndarray  # float64[T], seconds from the clip's start
    telemetry: dict[str, np.ndarray] | None  # time, speed, accel, yaw_rate, steering
    meta: dict  # region, source, span, split, reason, detail, drive_id, fps, frames_mode


class ExportedDataset:
    """A finished export as a sequence of clips (``len``, ``[i]``); PyTorch-free, so it can be
    wrapped by a ``torch.utils.data.Dataset`` as it is. Incomplete clips are not listed."""

    def __init__(self, path: str | Path, split: str | None = None):
        import zarr

        self.path = Path(path)
        try:
            self._root = zarr.open_group(self.path, mode="r")
        except Exception as err:
            raise InputError(f"{self.path} is not a clipdex export ({err}); run `clipdex export` first") from err
        if self._root.attrs.get("format") != EXPORT_FORMAT:
            raise InputError(f"{self.path} is not a {EXPORT_FORMAT} dataset; run `clipdex export` first")
        self.attrs = dict(self._root.attrs)
        self.clip_ids = [
            name for name in sorted(self._root.group_keys())
            if (a := self._root[name].attrs).get("complete") is True
            and (split is None or a.get("split") == split)
        ]

    def __len__(self) -> int:
        return len(self.clip_ids)

    def __getitem__(self, i: int) -> ExportedClip:
        cid = self.clip_ids[i]
        g = self._root[cid]
        tel = None
        if "telemetry" in g.group_keys():
            tg = g["telemetry"]
            tel = {name: np.asarray(tg[name][:]) for name in ("time", *TELEMETRY_CHANNELS) if name in tg.array_keys()}
        meta = {k: v for k, v in g.attrs.items() if k not in ("clip_id", "complete")}
        return ExportedClip(cid, np.asarray(g["frames"][:]), np.asarray(g["frame_times"][:]), tel, meta)

    def __iter__(self) -> Iterator[ExportedClip]:
        for i in range(len(self)):
            yield self[i]


def iter_dataset(path: str | Path, split: str | None = None) -> Iterator[ExportedClip]:
    """The complete clips of an export (``split="train"``/``"val"`` to filter), in id order."""
    return iter(ExportedDataset(path, split))

