"""Video files -> :class:`ClipSample` via PyAV, keyframes sampled by presentation time.

Decoding
    Frames are decoded in presentation order; only the frames picked as keyframes are converted
    to RGB (``frame.to_ndarray(format="rgb24")``, which honours full-range ``yuvj420p``, 4:4:4
    and 10-bit input). Frame times are ``(pts - first_pts) * time_base`` of the first *decoded*
    frame, so MP4 edit lists and streams whose first pts != 0 start at 0. Frames whose time does
    not increase are dropped (counted in ``meta["warnings"]``). Audio and other streams are
    never decoded. A missing container duration is fine: the stream is decoded to its end.

Sampling
    Targets are ``j / keyframe_hz`` seconds within each clip; for each target the decoded frame
    with the nearest presentation time is picked (ties -> earlier), the same rule as
    :func:`engine.sources.sampling.pick_nearest`, computed while streaming.
    ``duration_s`` = last frame time + one frame period (1 / average rate; else the last frame's
    own duration; else the last frame interval).

Splitting
    With ``clip_seconds=L`` a recording becomes clips ``<base>-0000``, ``<base>-0001`` ... of
    length L (the last one kept if it is >= 1 s, or if it is the only one); each is yielded as
    soon as its keyframes are decoded, so memory holds one clip. Without it the whole file is one
    clip ``<base>`` holding all its keyframes (``2 Hz x 720p`` = 5.5 MB per second of video:
    pass ``clip_seconds`` for recordings longer than a few minutes).

Strategies (``strategy=``), measured in ``benchmarks/test_bench_decode.py``
    ``"all"``       decode every frame (frame + slice threads), convert the picked ones.
    ``"targeted"``  decode reference frames always, and non-reference frames only within a
                    window around a target (``skip_frame`` switched per packet): the same picks
                    as ``"all"``. Window = 1.5 x the largest frame interval seen so far
                    (packet durations where the container has them, else intervals between
                    decoded frames; at least the nominal period), so VFR gaps widen it.
    ``"nonref"``    ``skip_frame="NONREF"`` throughout: picks may move to a neighbouring
                    reference frame (error < half a keyframe period; not identical to "all").
    ``"nonkey"``    ``skip_frame="NONKEY"``: key frames only; exact only for GOPs much shorter
                    than the keyframe period (intra-only codecs such as MJPEG).
    ``"auto"``      the measured winner, see :data:`AUTO_STRATEGY`.

Errors raise :class:`SourceError` naming the file, the problem and the fix. A file that breaks
part-way (truncated, corrupt packets) still yields what decoded, with ``meta["warnings"]``, if at
least one keyframe was decoded; otherwise it raises.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from engine.errors import InputError, SourceError
from engine.sources.sampling import TIME_TOLERANCE_S
from engine.sources.telemetry import align_telemetry, load_telemetry
from engine.types import ClipSample, Telemetry

#: refuse frames larger than this per side or in total (a decompression-bomb guard); override
#: per call with ``max_side=`` / ``max_pixels=``
MAX_SIDE = 8192
MAX_PIXELS = 40_000_000
#: a final split clip shorter than this is dropped (unless it is the only clip)
MIN_LAST_CLIP_S = 1.0
#: a decoded stream shorter than its declared duration by more than this is reported truncated
TRUNCATION_TOLERANCE_S = 0.5
#: the default, from benchmarks/test_bench_decode.py (720p H.264 30 fps, B-frames, 2 Hz):
#: "targeted" ran ~1.2-1.5x "all" with bit-identical keyframes; "nonref" ~1.5-1.7x but moved
#: ~40% of picks by one frame (pixel MAE up to ~45 on textured motion), so it loses quality;
#: "nonkey" is only exact for intra-only streams; seeking per sample ran ~0.13x.
AUTO_STRATEGY = "targeted"
STRATEGIES = ("auto", "all", "targeted", "nonref", "nonkey")
DIGEST_BLOCK = 1 << 20


def file_digest(path: Path) -> str:
    """blake2b-128 of the file's bytes, streamed in 1 MiB blocks (hex)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(DIGEST_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def _split_digest(base: str, offset_s: float, length_s: float) -> str:
    text = f"{base}:{offset_s:.6f}:{length_s:.6f}".encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


def _rgb(frame: av.VideoFrame, rotation: int, reformatter: VideoReformatter) -> np.ndarray:
    image = reformatter.reformat(frame, format="rgb24").to_ndarray()
    quarter_turns = round(rotation / 90) % 4
    if quarter_turns:
        # frame.rotation is the counter-clockwise turn that makes the picture upright
        image = np.rot90(image, k=quarter_turns)
    return np.ascontiguousarray(image)


class _Clip:
    """Keyframes of one output clip while it fills."""

    def __init__(self, index: int, start_s: float, length_s: float):
        self.index = index
        self.start_s = start_s
        self.length_s = length_s  # math.inf for the unsplit clip
        self.images: list[np.ndarray] = []
        self.picked_times: list[float] = []  # presentation time of each picked frame
        self.next_j = 0

    def target(self, hz: float) -> float | None:
        rel = self.next_j / hz
        if math.isfinite(self.length_s) and rel >= self.length_s - 1e-9:
            return None  # the next clip's t=0 covers it
        return self.start_s + rel


class _Sampler:
    """Streaming nearest-frame picker over consecutive clips."""

    def __init__(self, hz: float, clip_seconds: float | None, rotation_hint: int):
        self.hz = hz
        self.clip_seconds = clip_seconds
        self.clip = _Clip(0, 0.0, clip_seconds or math.inf)
        self.prev = None  # (time, frame)
        self.prev_rgb: tuple[float, np.ndarray] | None = None
        self.last_rgb: tuple[object, np.ndarray] | None = None
        self.rotation_hint = rotation_hint
        self.reformatter = VideoReformatter()  # reused: 2-4x cheaper than frame.to_ndarray()
        self.finished: list[_Clip] = []

    def _convert(self, frame) -> np.ndarray:
        if self.last_rgb is not None and self.last_rgb[0] is frame:
            return self.last_rgb[1]
        rotation = getattr(frame, "rotation", 0) or self.rotation_hint
        image = _rgb(frame, rotation, self.reformatter)
        self.last_rgb = (frame, image)
        return image

    def next_target(self) -> float | None:
        while True:
            target = self.clip.target(self.hz)
            if target is not None:
                return target
            self.finished.append(self.clip)
            start = (self.clip.index + 1) * self.clip_seconds
            self.clip = _Clip(self.clip.index + 1, start, self.clip_seconds)

    def push(self, time: float, frame) -> None:
        target = self.next_target()
        while target is not None and time >= target:
            if self.prev is None or (time - target) < (target - self.prev[0]):
                image, picked = self._convert(frame), time
            else:
                image, picked = self._convert(self.prev[1]), self.prev[0]
            self.clip.images.append(image)
            self.clip.picked_times.append(picked)
            self.clip.next_j += 1
            target = self.next_target()
        self.prev = (time, frame)

    def finish(self, duration_s: float) -> None:
        """Resolve remaining targets <= duration to the last frame; close the last clip."""
        if self.prev is not None:
            while True:
                target = self.next_target()
                if target is None or target > duration_s + TIME_TOLERANCE_S:
                    break
                self.clip.images.append(self._convert(self.prev[1]))
                self.clip.picked_times.append(self.prev[0])
                self.clip.next_j += 1
        if self.clip.images:
            self.finished.append(self.clip)
        self.clip = _Clip(self.clip.index + 1, math.inf, 0.0)


def _open(path: Path):
    if not path.exists():
        raise SourceError(f"video file {path} does not exist; check the path")
    if path.stat().st_size == 0:
        raise SourceError(f"video file {path} is empty (0 bytes); re-copy or re-export it")
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as err:
        raise SourceError(
            f"{path} is not a readable video ({err.strerror or err}); it may be truncated "
            "(an MP4 cut before its index) or not a video at all: re-export it or drop it"
        ) from err
    except OSError as err:
        raise SourceError(f"cannot open video file {path}: {err}; check permissions") from err


def _check_size(path: Path, width: int, height: int, max_side: int, max_pixels: int) -> None:
    if width > max_side or height > max_side or width * height > max_pixels:
        raise SourceError(
            f"{path}: frame size {width}x{height} exceeds the limit ({max_side} px a side, "
            f"{max_pixels / 1e6:g} MP); downscale the video or raise max_side/max_pixels"
        )


def iter_video_clips(
    path: Path | str,
    *,
    clip_id_base: str,
    keyframe_hz: float = 2.0,
    clip_seconds: float | None = None,
    telemetry: Path | str | None = None,
    threads: int = 0,
    strategy: str = "auto",
    max_side: int | None = None,
    max_pixels: int | None = None,
) -> Iterator[ClipSample]:
    """Decode one video file into clips with keyframes sampled at ``keyframe_hz``.

    ``threads`` = 0 lets FFmpeg choose (one per core). See the module doc for strategies,
    splitting and error handling.
    """
    path = Path(path)
    if strategy not in STRATEGIES:
        raise InputError(f"unknown decode strategy {strategy!r}; use one of {STRATEGIES}")
    if clip_seconds is not None and not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise InputError(f"clip_seconds={clip_seconds!r} must be > 0 (or None for one clip)")
    if not (math.isfinite(keyframe_hz) and keyframe_hz > 0):
        raise InputError(f"keyframe_hz={keyframe_hz!r} must be > 0; e.g. 2.0")
    max_side = MAX_SIDE if max_side is None else max_side
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels

    container = _open(path)
    try:
        yield from _decode(
            container, path, clip_id_base, float(keyframe_hz), clip_seconds, telemetry,
            threads, strategy, max_side, max_pixels,
        )
    finally:
        container.close()


def _decode(container, path, clip_id_base, hz, clip_seconds, telemetry, threads, strategy,
            max_side, max_pixels) -> Iterator[ClipSample]:
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise SourceError(
            f"{path} has no video stream (streams: {', '.join(kinds)}); it is audio-only or not "
            "a video: drop it from the input"
        )
    stream = container.streams.video[0]
    ctx = stream.codec_context
    if ctx is None:
        raise SourceError(
            f"{path}: no decoder for its video codec in this FFmpeg build; re-encode it to "
            "H.264/HEVC/VP9 (e.g. ffmpeg -i in -c:v libx264 out.mp4)"
        )
    codec_name = ctx.name
    if ctx.width and ctx.height:
        _check_size(path, ctx.width, ctx.height, max_side, max_pixels)
    ctx.thread_type = "AUTO"
    ctx.thread_count = int(threads)
    if strategy == "auto":
        strategy = AUTO_STRATEGY
    if strategy in ("nonref", "nonkey"):
        ctx.skip_frame = strategy.upper()

    time_base = stream.time_base or Fraction(1, 90000)
    fps = float(stream.average_rate) if stream.average_rate else math.nan
    if not math.isfinite(fps) and stream.guessed_rate:
        fps = float(stream.guessed_rate)
    nominal_period = 1.0 / fps if math.isfinite(fps) and fps > 0 else 0.0
    declared_s = float(stream.duration * time_base) if stream.duration else math.nan
    if not math.isfinite(declared_s) and container.duration:
        declared_s = container.duration / av.time_base

    digest = file_digest(path)
    tel, tel_warning = _load_sidecar(telemetry)
    sampler = _Sampler(hz, clip_seconds, rotation_hint=0)
    warnings: list[str] = [tel_warning] if tel_warning else []
    first_pts = None
    first_packet_pts = None
    last_time = -math.inf
    last_interval = 0.0
    last_duration = 0.0
    # window of "targeted": the largest frame interval, from packet durations where the
    # container has them, else from decoded frames
    tb_float = float(time_base)
    packet_interval = 0.0
    frame_interval = nominal_period
    max_interval = nominal_period
    dropped = 0
    frame_size = None
    skipping = False
    max_packet_pts = None  # skipped frames still count for the duration
    checked_size = False

    def clip_samples(final_duration: float | None) -> Iterator[ClipSample]:
        while sampler.finished:
            clip = sampler.finished.pop(0)
            if final_duration is None:
                length = clip.length_s
            else:
                length = min(clip.length_s, final_duration - clip.start_s)
            if clip_seconds is not None and clip.index > 0 and final_duration is not None \
                    and length < MIN_LAST_CLIP_S - 1e-9:
                warnings.append(f"last {length:.3f} s shorter than {MIN_LAST_CLIP_S} s dropped")
                continue
            yield _sample(path, clip, length, clip_id_base, clip_seconds, digest, hz, fps,
                          tel, warnings, codec_name)

    try:
        for packet in container.demux(stream):
            if packet.pts is not None and (max_packet_pts is None or packet.pts > max_packet_pts):
                max_packet_pts = packet.pts
            if strategy == "targeted" and packet.pts is not None:
                if first_packet_pts is None:
                    first_packet_pts = packet.pts
                packet_time = (packet.pts - first_packet_pts) * tb_float
                if packet.duration:
                    packet_interval = max(packet_interval, packet.duration * tb_float)
                max_interval = max(nominal_period, packet_interval or frame_interval)
                near = _grid_distance(packet_time, hz, clip_seconds) <= 1.5 * max_interval + 1e-6
                # far from every target: only frames others depend on are needed
                if near == skipping:
                    ctx.skip_frame = "DEFAULT" if near else "NONREF"
                    skipping = not near
            for frame in packet.decode():
                if not checked_size:
                    _check_size(path, frame.width, frame.height, max_side, max_pixels)
                    frame_size = (frame.width, frame.height)
                    checked_size = True
                elif (frame.width, frame.height) != frame_size:
                    raise SourceError(
                        f"{path}: frame size changes from {frame_size[0]}x{frame_size[1]} to "
                        f"{frame.width}x{frame.height} at {last_time:.3f} s; re-encode it at "
                        "one size (ffmpeg -vf scale=W:H)"
                    )
                pts = frame.pts
                if pts is None:  # raw streams: count frames at the nominal rate
                    time = 0.0 if sampler.prev is None else \
                        last_time + (nominal_period or last_interval or 1 / 30)
                else:
                    if first_pts is None:
                        first_pts = pts
                    time = float((pts - first_pts) * time_base)
                if time <= last_time:
                    dropped += 1
                    continue
                if math.isfinite(last_time):
                    last_interval = time - last_time
                    if not skipping:  # gaps made by skipped frames are not frame intervals
                        frame_interval = max(frame_interval, last_interval)
                last_time = time
                last_duration = float(frame.duration * time_base) if frame.duration else 0.0
                sampler.push(time, frame)
                if sampler.finished:
                    yield from clip_samples(None)
    except av.FFmpegError as err:
        if sampler.prev is None:
            raise SourceError(
                f"{path}: cannot decode its {codec_name} video ({err}); the file is corrupt, "
                "truncated or uses an unsupported codec: re-export it"
            ) from err
        warnings.append(f"decoding stopped at {last_time:.3f} s: {err} (truncated or corrupt)")
    if sampler.prev is None:
        raise SourceError(
            f"{path}: no video frame could be decoded ({codec_name}); the file is empty, "
            "truncated or corrupt: re-export it"
        )
    if dropped:
        warnings.append(f"{dropped} frames with non-increasing timestamps dropped")
    period = nominal_period or last_duration or last_interval
    end_time = last_time
    if max_packet_pts is not None and first_pts is not None:
        end_time = max(end_time, float((max_packet_pts - first_pts) * time_base))
    duration = end_time + period
    if math.isfinite(declared_s) and duration < declared_s - TRUNCATION_TOLERANCE_S \
            and not any("decoding stopped" in w for w in warnings):
        warnings.append(
            f"decoded {duration:.3f} s of a declared {declared_s:.3f} s (truncated file?)"
        )
    sampler.finish(duration)
    yield from clip_samples(duration)


def _grid_distance(time: float, hz: float, clip_seconds: float | None) -> float:
    """Distance (s) from ``time`` to the nearest sample target of any clip."""
    start = 0.0
    if clip_seconds is not None:
        start = math.floor(max(time, 0.0) / clip_seconds) * clip_seconds
    rel = time - start
    nearest = min(abs(rel - math.floor(rel * hz) / hz), abs(rel - math.ceil(rel * hz) / hz))
    if clip_seconds is not None:
        nearest = min(nearest, start + clip_seconds - time)
    return nearest


def _load_sidecar(telemetry) -> tuple[Telemetry | None, str]:
    if telemetry is None:
        return None, ""
    try:
        return load_telemetry(telemetry), ""
    except InputError as err:
        return None, f"telemetry ignored: {err}"


def _sample(path, clip, length, clip_id_base, clip_seconds, digest, hz, fps, tel, warnings,
            codec_name) -> ClipSample:
    keyframes = np.stack(clip.images)
    times = np.arange(len(clip.images), dtype=np.float64) / hz
    if clip_seconds is None:
        clip_id, clip_digest = clip_id_base, digest
    else:
        clip_id = f"{clip_id_base}-{clip.index:04d}"
        clip_digest = _split_digest(digest, clip.start_s, length)
    clip_tel = None
    clip_warnings = list(warnings)
    if tel is not None:
        clip_tel = align_telemetry(tel, clip.start_s, clip.start_s + length)
        if clip_tel.time.size == 0:
            clip_warnings.append(
                f"telemetry has no samples in [{clip.start_s:.3f}, {clip.start_s + length:.3f}) s"
            )
            clip_tel = None
    return ClipSample(
        clip_id=clip_id,
        source=str(path),
        digest=clip_digest,
        keyframes=keyframes,
        keyframe_times=times,
        duration_s=round(float(length), 6),
        telemetry=clip_tel,
        source_offset_s=float(clip.start_s),
        fps=fps,
        meta={
            "codec": codec_name,
            "warnings": clip_warnings,
            # presentation time of the frame picked for each keyframe, from the clip start
            "frame_times": np.asarray(clip.picked_times, dtype=np.float64) - clip.start_s,
        },
    )
