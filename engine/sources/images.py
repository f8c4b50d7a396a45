"""Image-sequence folders (jpg/jpeg/png) -> one :class:`ClipSample` per folder, via Pillow.

Frame times
    ``index.csv`` with columns ``file,time`` (seconds), or ``frames.json`` — either a list of
    ``{"file": ..., "time": ...}`` or ``{"fps": 12.5}`` — else a fixed rate ``fps`` (default 10)
    over the images in natural name order (``f2.jpg`` before ``f10.jpg``). Times are re-based so
    that the first frame is at 0; telemetry (``telemetry.csv`` in the folder) is on that axis.

Keyframes (temporally anti-aliased, exactly like zarr clips and video files)
    Sample times ``j / keyframe_hz`` up to the last image's time; each keyframe is the
    tent-weighted mean of the images within +-1/keyframe_hz of its time
    (:func:`engine.sources.sampling.tent_weights`), so every image in a window is decoded, once,
    streaming (memory holds the open keyframes only). Images are area-averaged to the working
    size of :func:`engine.sources.sampling.working_factor` (longest side <= 480 px, the same
    size a video of that frame size gives). ``reduced=True`` lets libjpeg decode at a reduced
    scale no smaller than the working size (``Image.draft``; faster on large JPEGs, pixels
    differ slightly from a full decode).

Cameras
    One folder is one camera. A folder whose file names carry several camera prefixes (at least
    2 images each), e.g. ``center_*.jpg``, ``left_*.jpg``, ``right_*.jpg`` as driving simulators
    write them, is refused with a :class:`SourceError` that names the cameras and the commands
    that move each camera's frames into a folder of its own.

Splitting
    With ``clip_seconds=L`` the folder's timeline becomes clips ``<base>-0000``, ``<base>-0001``
    ... of length L, cut as video files are (keyframes at ``start + j / keyframe_hz``; the last
    clip kept if it is >= 1 s or the only one); each carries ``source_offset_s`` and the folder's
    digest as its ``recording_id``.

Bad frames (decided policy)
    Every image's header is read (cheap) to check that all frames have one size; a frame of
    another size raises :class:`SourceError` naming the odd file. An image whose header cannot be
    read, or whose pixels fail to decode, keeps its place in the timeline and gets no weight:
    the keyframes whose windows hold it are renormalised over the images that decoded (warning
    in ``meta["warnings"]``). A keyframe whose window has no decodable image takes the nearest
    decodable image within half a keyframe period; if there is none, SourceError. A folder
    with fewer than 2 images is refused (a clip needs 2 frames to be aligned in time).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from engine.errors import InputError, SourceError
from engine.sources.sampling import (
    sample_times,
    temporal_half_width,
    tent_weights,
    working_factor,
)
from engine.sources.telemetry import align_telemetry, load_telemetry
from engine.types import ClipSample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
INDEX_FILES = ("index.csv", "frames.json")
#: a folder needs at least this many images (one frame cannot be aligned in time)
MIN_FRAMES = 2
#: the camera prefix of a frame's name: what comes before its first digit, e.g. "center" in
#: center_2016_12_01_13_30_48_287.jpg
_CAMERA_PREFIX = re.compile(r"^(?P<camera>[A-Za-z][A-Za-z ]*?)[ _.-]*\d")
#: the shortest last piece kept when splitting (a shorter tail is dropped unless it is the only one)
MIN_LAST_CLIP_S = 1.0


def camera_groups(files: list[Path]) -> dict[str, int]:
    """Camera prefix -> image count, for prefixes of at least ``MIN_FRAMES`` images."""
    counts: dict[str, int] = {}
    for f in files:
        m = _CAMERA_PREFIX.match(f.name)
        key = m.group("camera").lower() if m else ""
        counts[key] = counts.get(key, 0) + 1
    return {k: n for k, n in counts.items() if n >= MIN_FRAMES}


def _refuse_several_cameras(folder: Path, files: list[Path]) -> None:
    cams = {k: n for k, n in camera_groups(files).items() if k}
    if len(cams) < 2:
        return
    names = sorted(cams)
    listed = ", ".join(f"{k}_*: {cams[k]}" for k in names)
    raise SourceError(
        f"{folder} holds the frames of {len(cams)} cameras ({listed} images); one image folder is one "
        f"camera: move each camera's frames into a folder of its own (cd '{folder}' && for c in "
        f"{' '.join(names)}; do mkdir -p $c && mv ${{c}}_* $c/; done) and ingest the folder again")


def _split_targets(last_time: float, keyframe_hz: float, clip_seconds: float | None,
                   duration: float) -> list[tuple[float, float, np.ndarray]]:
    """(start, length, absolute keyframe times) per clip of the folder's timeline."""
    if clip_seconds is None:
        return [(0.0, duration, sample_times(last_time, keyframe_hz))]
    if not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise InputError(f"clip_seconds={clip_seconds!r} must be > 0 (or None for one clip)")
    pieces = []
    n = max(1, math.ceil(duration / clip_seconds - 1e-9))
    for i in range(n):
        start = i * clip_seconds
        length = min(clip_seconds, duration - start)
        if i > 0 and length < MIN_LAST_CLIP_S:
            break
        times = start + np.arange(int(math.ceil(length * keyframe_hz - 1e-9)) or 1) / keyframe_hz
        times = times[(times < start + length - 1e-9) & (times <= last_time + 1e-6)]
        if len(times):
            pieces.append((start, length, times))
    return pieces


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_images(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir()
         if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()),
        key=lambda p: natural_key(p.name),
    )


def _read_index(folder: Path, files: list[Path]) -> dict[str, float] | float | None:
    """file name -> time, or a frame rate from frames.json, or None."""
    by_name = {p.name for p in files}
    index_csv, frames_json = folder / "index.csv", folder / "frames.json"
    entries: list[tuple[str, object]] = []
    try:
        if index_csv.is_file():
            with open(index_csv, newline="", encoding="utf-8-sig") as handle:
                reader = csv.DictReader(handle)
                if not reader.fieldnames or not {"file", "time"} <= set(reader.fieldnames):
                    raise SourceError(
                        f"{index_csv} needs a header with columns file,time (got "
                        f"{reader.fieldnames}); fix the header or delete the file"
                    )
                entries = [(row["file"], row["time"]) for row in reader]
            source = index_csv
        elif frames_json.is_file():
            data = json.loads(frames_json.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "fps" in data:
                return float(data["fps"])
            rows = data.get("frames", []) if isinstance(data, dict) else data
            entries = [(row["file"], row["time"]) for row in rows]
            source = frames_json
        else:
            return None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise SourceError(f"cannot read the frame index in {folder}: {err}; fix or delete it") \
            from err
    times: dict[str, float] = {}
    for name, value in entries:
        try:
            time = float(value)
        except (TypeError, ValueError) as err:
            raise SourceError(
                f"{source}: time {value!r} of {name!r} is not a number; write seconds"
            ) from err
        if not math.isfinite(time):
            raise SourceError(f"{source}: time {value!r} of {name!r} must be finite seconds")
        if name in by_name:
            times[name] = time
    if not times:
        raise SourceError(f"{source} names none of the images in {folder}; fix its file column")
    return times


def _timeline(folder: Path, files: list[Path], fps: float,
              warnings: list[str]) -> tuple[list[Path], np.ndarray, float]:
    """The timed images of a folder, their times (from 0) and the frame period: from the frame
    index, else ``frames.json``'s rate, else ``fps``."""
    index = _read_index(folder, files)
    if isinstance(index, dict):
        timed = sorted((t, natural_key(f.name), f) for f in files if (t := index.get(f.name))
                       is not None)
        missing = len(files) - len(timed)
        if missing:
            warnings.append(f"{missing} images not in the frame index skipped")
        files = [f for _, _, f in timed]
        frame_times = np.array([t for t, _, _ in timed], dtype=np.float64)
        keep = np.concatenate(([True], np.diff(frame_times) > 0))
        if not keep.all():
            warnings.append(f"{int((~keep).sum())} images with duplicate times skipped")
            files = [f for f, k in zip(files, keep, strict=True) if k]
            frame_times = frame_times[keep]
        if frame_times.size:
            frame_times = frame_times - frame_times[0]
        period = float(np.median(np.diff(frame_times))) if frame_times.size > 1 else 1.0 / fps
    else:
        rate = index if isinstance(index, float) else fps
        frame_times = np.arange(len(files), dtype=np.float64) / rate
        period = 1.0 / rate
    return files, frame_times, period


def _content_digests(files: list[Path], frame_times: np.ndarray) -> tuple[str, str]:
    """The folder's content digest (its clips' ``recording_id``: names, times and bytes) and its
    content key (the images' bytes alone, in any order: the same pictures under other names or
    times, as erasure recognises them)."""
    digest = hashlib.blake2b(digest_size=16)
    pictures = []
    for file, time in zip(files, frame_times, strict=True):
        data = file.read_bytes()
        digest.update(f"{file.name}:{time:.6f}\0".encode())
        digest.update(data)
        pictures.append(hashlib.blake2b(data, digest_size=16).digest())
    key = hashlib.blake2b(b"images\0" + b"".join(sorted(pictures)), digest_size=16).hexdigest()
    return digest.hexdigest(), key


def folder_digest(folder: Path | str, fps: float = 10.0) -> str:
    """The content digest ingest records for an image folder read at ``fps`` (used where the
    folder must still hold what was ingested, e.g. by ``export``)."""
    folder = Path(folder)
    files, frame_times, _ = _timeline(folder, list_images(folder), fps, [])
    return _content_digests(files, frame_times)[0]


def iter_image_clips(
    folder: Path | str,
    *,
    clip_id_base: str,
    keyframe_hz: float = 2.0,
    fps: float = 10.0,
    telemetry: Path | str | None = None,
    reduced: bool = False,
    telemetry_map: dict[str, str] | None = None,
    telemetry_units: dict[str, str] | None = None,
    clip_seconds: float | None = None,
) -> Iterator[ClipSample]:
    """The clips of an image-sequence folder (one, or one per ``clip_seconds``); see the module
    doc for times, cameras, splitting and bad frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"image folder {folder} does not exist or is not a folder")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"image fps={fps!r} must be > 0; pass --image-fps, e.g. 10")
    files = list_images(folder)
    if not files:
        raise SourceError(f"{folder} holds no jpg/jpeg/png images; point at an image folder")
    _refuse_several_cameras(folder, files)
    warnings: list[str] = []

    sizes: dict[Path, tuple[int, int]] = {}
    for file in files:
        try:
            with Image.open(file) as image:
                sizes[file] = image.size
        except (OSError, UnidentifiedImageError):
            pass  # kept in the timeline; handled like a frame that fails to decode
    readable = [f for f in files if f in sizes]
    if not readable:
        raise SourceError(f"no image in {folder} can be read; the files are corrupt")
    first_size = sizes[readable[0]]
    for file in readable:
        if sizes[file] != first_size:
            raise SourceError(
                f"{file}: size {sizes[file][0]}x{sizes[file][1]} differs from the folder's "
                f"{first_size[0]}x{first_size[1]} ({readable[0].name}); resize or remove it"
            )

    files, frame_times, period = _timeline(folder, files, fps, warnings)
    if len(files) < MIN_FRAMES:
        raise SourceError(
            f"{folder} holds {len(files)} timed image; a clip needs at least {MIN_FRAMES} frames "
            "to be aligned in time: add the missing images or drop the folder"
        )
    duration = float(frame_times[-1] + period)
    pieces = _split_targets(float(frame_times[-1]), keyframe_hz, clip_seconds, duration)
    targets = np.concatenate([times for _, _, times in pieces])
    width, height = first_size
    factor = working_factor(width, height)
    decoder = _Decoder(files, (width, height), factor, reduced)
    keyframes, replaced = _blend(decoder, frame_times, targets, keyframe_hz)
    unreadable = [f.name for f in files if f not in sizes]
    if unreadable:
        warnings.append(f"{len(unreadable)} unreadable images skipped: {', '.join(unreadable)}")
    for i in sorted(decoder.failed):
        if files[i] in sizes:
            warnings.append(f"corrupt image {files[i].name} skipped (pixels fail to decode)")
    if replaced:
        warnings.append(f"keyframes at {', '.join(replaced)} taken from a neighbouring image")

    tel = None
    if telemetry is not None:
        try:
            units = telemetry_units or {}
            tel = align_telemetry(load_telemetry(telemetry, mapping=telemetry_map,
                                                 time_unit=units.get("time"),
                                                 speed_unit=units.get("speed")), 0.0, duration)
        except InputError as err:
            warnings.append(f"telemetry ignored: {err}")
    whole, content_key = _content_digests(files, frame_times)
    first = 0
    for i, (start, length, times) in enumerate(pieces):
        piece_keyframes = keyframes[first:first + len(times)]
        first += len(times)
        if clip_seconds is None:
            clip_id, clip_digest, clip_tel = clip_id_base, whole, tel
        else:
            clip_id = f"{clip_id_base}-{i:04d}"
            text = f"{whole}:{start:.6f}:{length:.6f}".encode()  # as video pieces are keyed
            clip_digest = hashlib.blake2b(text, digest_size=16).hexdigest()
            clip_tel = align_telemetry(tel, start, start + length) if tel is not None else None
            if clip_tel is not None and clip_tel.time.size == 0:
                clip_tel = None
        yield ClipSample(
            clip_id=clip_id,
            source=str(folder),
            digest=clip_digest,
            recording_id=whole,
            keyframes=np.ascontiguousarray(piece_keyframes),
            keyframe_times=times - start,
            duration_s=round(length, 6),
            telemetry=clip_tel,
            source_offset_s=float(start),
            fps=1.0 / period if period > 0 else math.nan,
            meta={"frames": int(((frame_times >= start) & (frame_times < start + length)).sum()),
                  "reduced": reduced, "warnings": warnings, "width": width, "height": height,
                  "content_key": content_key},
        )


class _Decoder:
    """Decodes image ``i`` once to float32 [3, h, w] at the working size (None if it fails)."""

    def __init__(self, files: list[Path], size: tuple[int, int], factor: int, reduced: bool):
        self.files, self.factor, self.reduced = files, factor, reduced
        self.out_w, self.out_h = max(1, size[0] // factor), max(1, size[1] // factor)
        self.failed: set[int] = set()
        self.errors: dict[int, Exception] = {}

    def __call__(self, i: int) -> np.ndarray | None:
        if i in self.failed:
            return None
        try:
            with Image.open(self.files[i]) as image:
                width, height = image.size
                if self.reduced and self.factor > 1:
                    image.draft("RGB", (self.out_w, self.out_h))
                rgb = image.convert("RGB")
                if self.factor > 1:
                    scale = rgb.size[0] / width, rgb.size[1] / height  # < 1 after draft
                    box = (0, 0, self.out_w * self.factor * scale[0],
                           self.out_h * self.factor * scale[1])
                    rgb = rgb.resize((self.out_w, self.out_h), Image.Resampling.BOX, box=box)
                array = np.asarray(rgb, dtype=np.uint8)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            self.failed.add(i)
            self.errors[i] = err
            return None
        return np.moveaxis(array, 2, 0).astype(np.float32)


def _blend(decoder: _Decoder, frame_times: np.ndarray, targets: np.ndarray,
           keyframe_hz: float) -> tuple[np.ndarray, list[str]]:
    """Tent-filtered keyframes uint8[k, h, w, 3], streaming over the images in time order."""
    half = temporal_half_width(keyframe_hz)
    windows = tent_weights(frame_times, targets, half)
    contributions: dict[int, list[tuple[int, float]]] = {}
    for j, (a, _, w) in enumerate(windows):
        for offset, weight in enumerate(w):
            contributions.setdefault(a + offset, []).append((j, float(weight)))
    closes: dict[int, list[int]] = {}
    for j, (_, b, _) in enumerate(windows):
        closes.setdefault(b - 1, []).append(j)
    out = np.empty((len(targets), decoder.out_h, decoder.out_w, 3), np.uint8)
    acc: dict[int, np.ndarray] = {}
    wsum: dict[int, float] = {}
    replaced: list[str] = []
    for i in sorted(set(contributions) | set(closes)):
        image = decoder(i) if i in contributions else None
        for j, weight in contributions.get(i, []):
            if j not in acc:
                acc[j] = np.zeros((3, decoder.out_h, decoder.out_w), np.float32)
                wsum[j] = 0.0
            if image is not None:
                acc[j] += np.float32(weight) * image
                wsum[j] += weight
        for j in closes.get(i, []):
            total = wsum.pop(j, 0.0)
            blended = acc.pop(j, None)
            if total > 0:
                blended /= np.float32(total)
            else:
                blended = _nearest_good(decoder, frame_times, float(targets[j]), 0.5 * half)
                replaced.append(f"{targets[j]:.3f} s")
            out[j] = np.rint(blended).astype(np.uint8).transpose(1, 2, 0)
    return out, replaced


def _nearest_good(decoder: _Decoder, frame_times, target: float, limit: float) -> np.ndarray:
    order = np.argsort(np.abs(frame_times - target), kind="stable")
    for candidate in order:
        candidate = int(candidate)
        if abs(frame_times[candidate] - target) > limit:
            break
        image = decoder(candidate)
        if image is not None:
            return image
    nearest = int(order[0])
    err = decoder.errors.get(nearest)
    raise SourceError(
        f"{decoder.files[nearest]}: nearest image to the keyframe at {target:.3f} s but it "
        f"cannot be decoded ({err}) and no neighbour within {limit:.3f} s can replace it; "
        "re-export the image or remove it"
    ) from err
