"""Image-sequence folders (jpg/jpeg/png) -> one :class:`ClipSample` per folder, via Pillow.

Frame times
    ``index.csv`` with columns ``file,time`` (seconds), or ``frames.json`` — either a list of
    ``{"file": ..., "time": ...}`` or ``{"fps": 12.5}`` — else a fixed rate ``fps`` (default 10)
    over the images in natural name order (``f2.jpg`` before ``f10.jpg``). Times are re-based so
    that the first frame is at 0; telemetry (``telemetry.csv`` in the folder) is on that axis.

Decoding
    Only the picked images are decoded, at full size by default. ``reduced=True`` asks libjpeg
    for a 1/4-size decode (``Image.draft``, ~3x faster on JPEG; PNG is decoded full size and
    then reduced), so keyframes are ~W/4 x H/4: use it only when every clip of a store uses it.

Bad frames (decided policy)
    Every image's header is read (cheap) to check that all frames have one size; a frame of
    another size raises :class:`SourceError` naming the odd file. An image whose header cannot be
    read, or whose pixels fail to decode, keeps its place in the timeline: if it is not picked it
    costs nothing but a warning; if it is picked, the nearest other image within half a keyframe
    period replaces it (warning in ``meta["warnings"]``); if none decodes, SourceError.
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
from engine.sources.sampling import pick_nearest, sample_times
from engine.sources.telemetry import align_telemetry, load_telemetry
from engine.types import ClipSample

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
INDEX_FILES = ("index.csv", "frames.json")


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
    duration = float(frame_times[-1] + period)
    targets = sample_times(duration, keyframe_hz)
    picks = pick_nearest(frame_times, targets)

    decoded: dict[int, np.ndarray] = {}
    keyframes = []
    half_period = 0.5 / keyframe_hz
    failed: set[int] = set()
    for target, pick in zip(targets, picks, strict=True):
        image = _decode_with_fallback(files, frame_times, int(pick), target, half_period,
                                      decoded, failed, reduced)
        keyframes.append(image)
    unreadable = [f.name for f in files if f not in sizes]
    if unreadable:
        warnings.append(f"{len(unreadable)} unreadable images skipped: {', '.join(unreadable)}")
    for i in sorted(failed):
        if files[i] in sizes:
            warnings.append(f"corrupt image {files[i].name} skipped (pixels fail to decode)")
    replaced = [f"{t:.3f} s" for t, p in zip(targets, picks, strict=True) if int(p) in failed]
    if replaced:
        warnings.append(f"keyframes at {', '.join(replaced)} taken from a neighbouring image")
    shapes = {k.shape for k in keyframes}
    if len(shapes) > 1:  # reduced PNG vs JPEG sizes can differ by rounding
        raise SourceError(f"{folder}: keyframes decode to sizes {sorted(shapes)}; use one format")

    tel = None
    if telemetry is not None:
        try:
            tel = align_telemetry(load_telemetry(telemetry), 0.0, duration)
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
        keyframes=np.ascontiguousarray(np.stack(keyframes)),
        keyframe_times=targets,
        duration_s=round(duration, 6),
        telemetry=tel,
        fps=1.0 / period if period > 0 else math.nan,
        meta={"frames": len(files), "reduced": reduced, "warnings": warnings},
    )


def _decode(file: Path, reduced: bool) -> np.ndarray:
    with Image.open(file) as image:
        if reduced:
            width, height = image.size
            image.draft("RGB", (max(1, width // 4), max(1, height // 4)))
            rgb = image.convert("RGB")
            if rgb.size[0] > max(1, width // 4) + 1:
                rgb = rgb.reduce(4)
        else:
            rgb = image.convert("RGB")
        return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def _decode_with_fallback(files, frame_times, pick, target, half_period, decoded, failed,
                          reduced) -> np.ndarray:
    if pick in decoded:
        return decoded[pick]
    order = np.argsort(np.abs(frame_times - target), kind="stable")
    first_error = None
    for candidate in order:
        candidate = int(candidate)
        if candidate != pick and abs(frame_times[candidate] - target) > half_period:
            break
        if candidate in failed:
            continue
        if candidate in decoded:
            return decoded[candidate]
        try:
            image = _decode(files[candidate], reduced)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            first_error = first_error or err
            failed.add(candidate)
            continue
        decoded[candidate] = image
        return image
    raise SourceError(
        f"{files[pick]}: picked for the keyframe at {target:.3f} s but it cannot be decoded "
        f"({first_error}) and no neighbour within {half_period:.3f} s can replace it; "
        "re-export the image or remove it"
    ) from first_error
