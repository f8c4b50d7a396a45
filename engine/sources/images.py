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
) -> Iterator[ClipSample]:
    """One clip from an image-sequence folder; see the module doc for times and bad frames."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SourceError(f"image folder {folder} does not exist or is not a folder")
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"image fps={fps!r} must be > 0; pass --image-fps, e.g. 10")
    files = list_images(folder)
    if not files:
        raise SourceError(f"{folder} holds no jpg/jpeg/png images; point at an image folder")
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
        frame_times = frame_times - frame_times[0]
        period = float(np.median(np.diff(frame_times))) if frame_times.size > 1 else 1.0 / fps
    else:
        rate = index if isinstance(index, float) else fps
        frame_times = np.arange(len(files), dtype=np.float64) / rate
        period = 1.0 / rate
    if len(files) < MIN_FRAMES:
        raise SourceError(
            f"{folder} holds {len(files)} timed image; a clip needs at least {MIN_FRAMES} frames "
            "to be aligned in time: add the missing images or drop the folder"
        )
    duration = float(frame_times[-1] + period)
    targets = sample_times(float(frame_times[-1]), keyframe_hz)
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
    digest = hashlib.blake2b(digest_size=16)
    for file, time in zip(files, frame_times, strict=True):  # names, times and bytes
        digest.update(f"{file.name}:{time:.6f}\0".encode())
        digest.update(file.read_bytes())
    yield ClipSample(
        clip_id=clip_id_base,
        source=str(folder),
        digest=digest.hexdigest(),
        keyframes=keyframes,
        keyframe_times=targets,
        duration_s=round(duration, 6),
        telemetry=tel,
        fps=1.0 / period if period > 0 else math.nan,
        meta={"frames": len(files), "reduced": reduced, "warnings": warnings, "width": width,
              "height": height},
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
