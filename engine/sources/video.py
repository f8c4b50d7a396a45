"""Video files -> :class:`ClipSample` via PyAV, keyframes sampled by presentation time.

Decoding
    Frames are decoded in presentation order (frame + slice threads), all of them or those a
    decode strategy keeps (below; the default skips non-reference frames). Frame times are
    ``(pts - first_pts) * time_base`` of the first *decoded* frame, so MP4 edit lists and streams
    whose first pts != 0 start at 0. Frames whose time does not increase are dropped (counted in
    ``meta["warnings"]``). Audio and other streams are never decoded. A missing container
    duration is fine: the stream is decoded to its end.

Keyframes (temporally anti-aliased, exactly like zarr clips)
    Sample times are ``j / keyframe_hz`` within each clip, up to the last frame's time. Each
    keyframe is the tent-weighted mean of the decoded frames within +-1/keyframe_hz of its time
    (weight ``1 - |t - target| * keyframe_hz``, normalised), accumulated while streaming: each
    frame adds into the (at most 2, 3 at split-clip seams) open keyframes whose window holds it.
    A keyframe with no frame in its window takes the nearest frame (ties -> earlier). These are
    the same times, window and weights as :func:`engine.sources.sampling.tent_weights`, so a
    clip read from a zarr store, an H.264 file or an image folder gives near-identical keyframes.
    ``duration_s`` = last frame time + one frame period (1 / average rate; else the last frame's
    own duration; else the last frame interval).

Working size
    Frames are area-averaged to the working size of :func:`engine.sources.sampling.
    working_factor` (power-of-two factor, longest side <= 480 px: 1280x720 -> 320x180,
    1920x1080 -> 480x270) *during* conversion: 8-bit planar YUV (4:2:0/4:2:2/4:4:4, limited or
    full range, BT.601 or BT.709 as tagged) goes straight from the decoder's planes through
    :func:`kernels.yuv_area_accumulate` into float32 accumulators; other formats (10-bit, NV12,
    RGB ...) through swscale's area scaler to RGB. Rotation metadata is applied to the keyframe.
    ``meta`` holds the source's coded ``width``/``height``. Where a block is 4+ rows tall (720p
    and up) the kernel averages its central half of the rows (all columns): the kernel is
    memory-bound and this reads ~1/3 less of each frame (-17% of its time) for a vertical
    2-of-4 box instead of 4-of-4 -- on the benchmark's noise texture keyframes move by 1.5 grey
    levels on average and PDQ hashes by 1.3 of 256 bits; the dedup tests pass unchanged.

Threads
    A helper thread decodes up to :data:`DECODE_AHEAD` frames ahead of the accumulation, so the
    decode loop feeding FFmpeg's frame threads never waits for the kernel (a small gain on an
    idle 2-core machine, ~1% CPU lost to the hand-off; ``DECODE_AHEAD = 0`` decodes inline).

Splitting
    With ``clip_seconds=L`` a recording becomes clips ``<base>-0000``, ``<base>-0001`` ... of
    length L (the last one kept if it is >= 1 s, or if it is the only one); each is yielded as
    soon as its keyframes are complete, so memory holds one clip. Windows near a seam use the
    frames on both sides (the recording is one timeline). Without it the whole file is one clip
    ``<base>`` holding all its keyframes (2 Hz x 320x180 = 0.35 MB per second of video).

Decode strategies (``strategy=``, ``clipdex ingest --decode NAME``)
    One table, :data:`DECODE_STRATEGIES`, maps each name to its FFmpeg settings and a line
    saying what it trades; ``"auto"`` is :data:`AUTO_STRATEGY`. Settings that skip work
    (the in-loop deblocking filter, non-reference frames) change the decoded pixels a little
    and so the keyframes; at the working size (320x180 or less) deblocking edges average away.
    ``keyframes`` decodes intra frames only: each 2 Hz keyframe is the tent-weighted mean of the
    intra frames in its window, or the nearest intra frame, so what a keyframe shows follows
    the stream's GOP (with a GOP of 1 s or more, consecutive keyframes repeat one picture).
    A raw stream without timestamps (frame times are counted) is always decoded whole.
    ``benchmarks/decode_modes.py`` measures each one's speed and real-footage dedup quality.

Object storage
    ``path`` may be an ``s3://`` URL: PyAV reads the object through a seekable, hashing file
    over range requests (:mod:`engine.sources.remote`), never a temporary copy. Its split clips
    are yielded when the stream ends (memory then holds its keyframes, as for an unsplit file),
    so that the digest that names them comes from the bytes the decoder read.

Errors raise :class:`SourceError` naming the file, the problem and the fix. A file that breaks
part-way (truncated, corrupt packets) still yields what decoded, with ``meta["warnings"]``, if at
least one keyframe was decoded; otherwise it raises.
"""

from __future__ import annotations

import hashlib
import math
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.reformatter import VideoReformatter

import kernels
from engine.errors import InputError, SourceError
from engine.sources.remote import ObjectReader, is_object_url
from engine.sources.sampling import (
    TIME_TOLERANCE_S,
    BlendGate,
    temporal_half_width,
    working_factor,
)
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
#: a video must decode at least this many frames (a 1-frame "clip" cannot be aligned in time)
MIN_FRAMES = 2


@dataclass(frozen=True)
class DecodeStrategy:
    """FFmpeg decoder settings of one ``strategy=`` name and what it trades (``doc``)."""

    doc: str
    #: whole frames the decoder drops (AVDiscard): "DEFAULT" none, "NONREF", "NONKEY"
    skip_frame: str = "DEFAULT"
    #: frames whose in-loop deblocking filter is skipped (AVDiscard option value), "" none
    skip_loop_filter: str = ""
    #: FFmpeg threading: "AUTO" (frame + slice threads) or "SLICE"
    thread_type: str = "AUTO"
    #: decode at 1/2^k size down to the working size where the codec can (MPEG-4 Part 2,
    #: MJPEG, MPEG-1/2; others ignore it)
    lowres: bool = False

    @property
    def every_frame(self) -> bool:
        """Whether every frame reaches the tent filter (else the keyframes are approximate)."""
        return self.skip_frame == "DEFAULT"

    def configure(self, ctx, width: int, height: int, threads: int) -> None:
        """Apply these settings to an unopened codec context of a ``width`` x ``height`` stream."""
        ctx.thread_type = self.thread_type
        ctx.thread_count = int(threads)
        ctx.skip_frame = self.skip_frame
        options = dict(ctx.options)
        if self.skip_loop_filter:
            options["skip_loop_filter"] = self.skip_loop_filter
        if self.lowres and width and height:  # FFmpeg clamps it to the codec's max_lowres
            options["lowres"] = str(min(3, int(math.log2(working_factor(width, height)))))
        ctx.options = options


#: decode strategies by name; ``benchmarks/decode_modes.py`` measures every entry
DECODE_STRATEGIES: dict[str, DecodeStrategy] = {
    "all": DecodeStrategy("every frame, fully decoded: the exact tent filter"),
    "noloop": DecodeStrategy(
        "every frame, in-loop deblocking skipped: less CPU, blockier pixels",
        skip_loop_filter="all"),
    "noloop-nonref": DecodeStrategy(
        "reference frames only, deblocking skipped: fewest CPU seconds short of intra-only; "
        "non-reference frames leave the tent windows", skip_frame="NONREF",
        skip_loop_filter="all"),
    "nonref": DecodeStrategy(
        "reference frames only (non-reference B frames skipped); they leave the tent windows",
        skip_frame="NONREF"),
    "slice": DecodeStrategy(
        "every frame, slice threads only: no frame-thread delay or memory; parallel only "
        "where a stream has several slices", thread_type="SLICE"),
    "lowres": DecodeStrategy(
        "every frame at a reduced size where the codec can (MPEG-4 Part 2, MJPEG, MPEG-1/2); "
        "H.264/HEVC/VP9 decode as 'all'", lowres=True),
    "keyframes": DecodeStrategy(
        "intra frames only (triage): keyframes follow the GOP, so a GOP over 0.5 s repeats "
        "pictures and blurs the timing of matches", skip_frame="NONKEY"),
    "targeted": DecodeStrategy(
        "the frames inside any keyframe window: with windows one keyframe period wide, every "
        "frame, as 'all'"),
    "nonkey": DecodeStrategy("intra frames only, as 'keyframes'", skip_frame="NONKEY"),
}
#: the default: the fastest strategy whose real-footage dedup F1 is within 0.01 of "all"
#: (``python -m benchmarks.decode_modes``, ``benchmarks/results/decode_modes.json``)
AUTO_STRATEGY = "noloop-nonref"
STRATEGIES = ("auto", *DECODE_STRATEGIES)
DIGEST_BLOCK = 1 << 20
_NO_TIMESTAMPS = 0x0080  # AVFMT_NOTIMESTAMPS: a raw stream whose frame times are counted
#: decoded frames a helper thread may run ahead of the keyframe accumulation (0 = decode in the
#: calling thread). The decode loop then never waits for the accumulation kernel, so FFmpeg's
#: frame threads are fed without gaps (see benchmarks/test_bench_ingest.py)
DECODE_AHEAD = 4
_DONE = object()


def file_digest(path: Path) -> str:
    """blake2b-128 of the file's bytes, streamed in 1 MiB blocks (hex)."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(DIGEST_BLOCK):
            digest.update(block)
    return digest.hexdigest()


class _Background:
    """``fn(*args)`` in a daemon thread (hashlib releases the GIL); ``result()`` joins it and
    returns its value or raises its exception."""

    def __init__(self, fn, *args):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn, *args), daemon=True)
        self._thread.start()

    def _run(self, fn, *args) -> None:
        try:
            self._value = fn(*args)
        except BaseException as err:  # noqa: BLE001 -- re-raised by result()
            self._error = err

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


class _Later:
    """``fn()`` when ``result()`` is first asked for (same interface as :class:`_Background`)."""

    def __init__(self, fn):
        self._fn = fn

    def result(self):
        return self._fn()


def _split_digest(base: str, offset_s: float, length_s: float) -> str:
    text = f"{base}:{offset_s:.6f}:{length_s:.6f}".encode()
    return hashlib.blake2b(text, digest_size=16).hexdigest()


class _Clip:
    """Keyframes of one output clip while it fills."""

    def __init__(self, index: int, start_s: float, length_s: float):
        self.index = index
        self.start_s = start_s
        self.length_s = length_s  # math.inf for the unsplit clip
        self.images: list[np.ndarray] = []
        self.window_frames: list[int] = []  # frames averaged into each keyframe


class _Target:
    __slots__ = ("time", "clip", "slot", "weight", "frames")

    def __init__(self, time: float, clip: _Clip, slot: int):
        self.time, self.clip, self.slot = time, clip, slot
        self.weight = 0.0
        self.frames = 0


#: 8-bit planar formats the YUV kernel reads directly: (chroma rows, chroma cols) subsampling
#: and whether the levels are full range
_PLANAR = {
    "yuv420p": (2, 2, False), "yuvj420p": (2, 2, True),
    "yuv422p": (1, 2, False), "yuvj422p": (1, 2, True),
    "yuv444p": (1, 1, False), "yuvj444p": (1, 1, True),
}


class _Converter:
    """Adds ``weight * frame`` (area-downsampled to the working size, RGB) to accumulators."""

    def __init__(self, width: int, height: int):
        self.factor = working_factor(width, height)
        self.out_w = max(1, width // self.factor)
        self.out_h = max(1, height // self.factor)
        self.scratch = np.empty((3, self.out_h, self.out_w), np.float32)
        self.reformatter = VideoReformatter()
        self.kernel_frames = 0

    def add(self, frame, acc: np.ndarray, slots: np.ndarray, weights: np.ndarray) -> None:
        planar = _PLANAR.get(frame.format.name)
        f = self.factor
        if planar is not None and f % planar[0] == 0 and f % planar[1] == 0:
            sub_y, sub_x, full = planar
            planes = [np.frombuffer(p, np.uint8).reshape(p.height, p.line_size)
                      for p in frame.planes[:3]]
            full = full or _is_full_range(frame)
            matrix = "bt709" if _colorspace(frame) == 1 else "bt601"
            cfy = f // sub_y
            kernels.yuv_area_accumulate(planes[0], planes[1], planes[2], (f, f),
                                        (cfy, f // sub_x), acc, slots, weights,
                                        full_range=full, matrix=matrix, scratch=self.scratch,
                                        rows=(_rows_read(f), _rows_read(cfy)))
            self.kernel_frames += 1
            return
        # other formats (10-bit, NV12, RGB, small frames with subsampled chroma): swscale
        image = self.reformatter.reformat(
            frame, width=self.out_w, height=self.out_h, format="rgb24",
            interpolation="AREA" if f > 1 else None,
        ).to_ndarray()
        planar_rgb = np.moveaxis(image, 2, 0).astype(np.float32)
        for slot, weight in zip(slots, weights, strict=True):
            acc[slot] += weight * planar_rgb


def _rows_read(factor: int) -> int:
    """Rows of each block of ``factor`` rows the YUV kernel averages: the central half from 4
    up (reading a quarter to a half of the frame less is ~40% of the kernel's cost, which is
    memory-bound), else all."""
    return factor // 2 if factor >= 4 else factor


def _is_full_range(frame) -> bool:
    try:
        return int(frame.color_range) == 2  # AVCOL_RANGE_JPEG
    except (AttributeError, TypeError, ValueError):
        return False


def _colorspace(frame) -> int:
    try:
        return int(frame.colorspace)
    except (AttributeError, TypeError, ValueError):
        return 2


class _Sampler:
    """Streaming tent-filtered keyframes over consecutive clips.

    Targets (sample times) are made in time order; each stays open while frames within
    ``half_width`` of it arrive, accumulating ``(1 - |t - target| / half_width) * frame`` in a
    float32 working-size accumulator; it closes when a frame at ``>= target + half_width``
    arrives (or the stream ends) as ``accumulator / sum of weights`` -- the same keyframe as
    :func:`~engine.sources.sampling.tent_weights` + :func:`blend_keyframes` give. A target with
    no frame in its window takes its nearest frame (ties -> earlier).
    """

    def __init__(self, hz: float, clip_seconds: float | None):
        self.hz = hz
        self.half = temporal_half_width(hz)
        self.clip_seconds = clip_seconds
        self.gen_clip = _Clip(0, 0.0, clip_seconds or math.inf)
        self.gen_j = 0
        self.open: list[_Target] = []
        self.filling: list[_Clip] = [self.gen_clip]
        self.finished: list[_Clip] = []
        self.prev: tuple[float, object] | None = None
        self.gate = BlendGate()
        self.frames = 0
        self.converter: _Converter | None = None
        self.rotation = 0
        self.acc: np.ndarray | None = None
        self.free: list[int] = []

    # -- targets ---------------------------------------------------------------------------
    def _peek(self) -> float:
        return self.gen_clip.start_s + self.gen_j / self.hz

    def _generate(self) -> _Target:
        clip = self.gen_clip
        target = _Target(self._peek(), clip, self._slot())
        self.gen_j += 1
        if math.isfinite(clip.length_s) and self.gen_j / self.hz >= clip.length_s - 1e-9:
            start = (clip.index + 1) * self.clip_seconds
            self.gen_clip = _Clip(clip.index + 1, start, self.clip_seconds)
            self.filling.append(self.gen_clip)
            self.gen_j = 0
        self.open.append(target)
        return target

    def _slot(self) -> int:
        if not self.free:
            grown = 0 if self.acc is None else self.acc.shape[0]
            shape = (max(4, 2 * grown), 3, self.converter.out_h, self.converter.out_w)
            acc = np.zeros(shape, np.float32)
            if self.acc is not None:
                acc[:grown] = self.acc
            self.acc = acc
            self.free = list(range(shape[0] - 1, grown - 1, -1))
        slot = self.free.pop()
        self.acc[slot] = 0.0
        return slot

    # -- frames ----------------------------------------------------------------------------
    def push(self, time: float, frame) -> None:
        if self.converter is None:
            self.converter = _Converter(frame.width, frame.height)
        self.rotation = getattr(frame, "rotation", 0) or 0
        self.frames += 1
        while self.open and self.open[0].time + self.half <= time:
            self._close(self.open.pop(0), frame, time)
        while self._peek() < time + self.half:
            target = self._generate()
            if target.time + self.half <= time:  # a gap longer than the window
                self.open.remove(target)
                self._close(target, frame, time)
        blend = self.gate.take(time)  # frames past BLEND_MAX_HZ are decoded, not blended
        if self.open and blend:
            slots = np.array([t.slot for t in self.open], np.int64)
            weights = np.array([1.0 - abs(time - t.time) / self.half for t in self.open],
                               np.float32)
            self.converter.add(frame, self.acc, slots, weights)
            for target, weight in zip(self.open, weights, strict=True):
                target.weight += float(weight)
                target.frames += 1
        self.prev = (time, frame)
        self._emit()

    def _close(self, target: _Target, next_frame=None, next_time: float = math.inf) -> None:
        acc = self.acc[target.slot]
        if target.weight > 0:
            acc /= np.float32(target.weight)
        else:  # nearest frame alone; ties -> the earlier one
            prev_time, prev_frame = self.prev if self.prev else (-math.inf, None)
            nearest = next_frame if (next_time - target.time) < (target.time - prev_time) \
                else prev_frame
            self.converter.add(nearest, self.acc, np.array([target.slot], np.int64),
                               np.ones(1, np.float32))
            target.frames = 1
        np.rint(acc, out=acc)
        planar = acc.astype(np.uint8)
        image = np.empty((*planar.shape[1:], 3), np.uint8)
        for channel in range(3):  # planar -> interleaved, one channel at a time: 4x faster than
            image[:, :, channel] = planar[channel]  # a transposed float -> uint8 copy
        quarter_turns = round(self.rotation / 90) % 4
        if quarter_turns:  # frame.rotation: the counter-clockwise turn that makes it upright
            image = np.ascontiguousarray(np.rot90(image, k=quarter_turns))
        target.clip.images.append(image)
        target.clip.window_frames.append(target.frames)
        self.free.append(target.slot)

    def _emit(self) -> None:
        oldest = self.open[0].clip.index if self.open else self.gen_clip.index
        while self.filling and self.filling[0].index < oldest:
            clip = self.filling.pop(0)
            if clip.images:
                self.finished.append(clip)

    def finish(self, end_time: float) -> None:
        """Close every target <= ``end_time`` (the last frame's time); drop later ones."""
        if self.prev is None:
            return
        while self._peek() <= end_time + TIME_TOLERANCE_S:
            self._generate()
        for target in self.open:
            if target.time <= end_time + TIME_TOLERANCE_S:
                self._close(target)
            else:
                self.free.append(target.slot)
        self.open = []
        for clip in self.filling:
            if clip.images:
                self.finished.append(clip)
        self.filling = []


def check_strategy(name: str) -> str:
    """``name`` if it is a decode strategy (or "auto"); else an :class:`InputError` naming them."""
    if name not in STRATEGIES:
        raise InputError(f"unknown decode strategy {name!r}; use one of {', '.join(STRATEGIES)} "
                         "(trade-offs: python -m benchmarks.decode_modes)")
    return name


def container_creation_time(container) -> str:
    """The container's ``creation_time`` tag (MP4/MOV), as written (ISO 8601), or ""."""
    for tags in (container.metadata, *(st.metadata for st in container.streams.video[:1])):
        value = (tags or {}).get("creation_time", "")
        if value:
            return str(value)
    return ""


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


def _open_object(reader: ObjectReader):
    """A PyAV container reading ``reader`` (an object on object storage)."""
    if reader.size == 0:
        reader.close()
        raise SourceError(f"{reader} is empty (0 bytes); upload it again or drop it")
    try:
        return av.open(reader, mode="r")
    except av.FFmpegError as err:
        reader.close()
        raise SourceError(
            f"{reader} is not a readable video ({err.strerror or err}); it may be truncated "
            "(an MP4 cut before its index) or not a video at all: re-export it or drop it"
        ) from err
    except BaseException:
        reader.close()
        raise


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
    telemetry_map: dict[str, str] | None = None,
    telemetry_units: dict[str, str] | None = None,
    version: str = "",
) -> Iterator[ClipSample]:
    """Decode one video file into clips with keyframes sampled at ``keyframe_hz``.

    ``threads`` = 0 lets FFmpeg choose (one per core). ``telemetry_map`` / ``telemetry_units``
    go to :func:`~engine.sources.telemetry.load_telemetry` (``{"time": "ms", "speed": "km/h"}``).
    ``path`` may be an ``s3://`` URL (a ``str``; ``version`` = ``<ETag>:<size>`` from its
    listing, checked when it is opened): see :mod:`engine.sources.remote`; its clips carry
    ``meta["object"]`` (ETag and size). See the module doc for strategies, splitting and error
    handling.
    """
    remote = is_object_url(path)
    path = path if remote else Path(path)
    check_strategy(strategy)
    if clip_seconds is not None and not (math.isfinite(clip_seconds) and clip_seconds > 0):
        raise InputError(f"clip_seconds={clip_seconds!r} must be > 0 (or None for one clip)")
    if not (math.isfinite(keyframe_hz) and keyframe_hz > 0):
        raise InputError(f"keyframe_hz={keyframe_hz!r} must be > 0; e.g. 2.0")
    max_side = MAX_SIDE if max_side is None else max_side
    max_pixels = MAX_PIXELS if max_pixels is None else max_pixels
    reader = ObjectReader(path, version) if remote else None
    if reader is not None:
        container = _open_object(reader)
        try:
            for sample in _decode(
                container, reader, clip_id_base, float(keyframe_hz), clip_seconds, None,
                threads, strategy, max_side, max_pixels, telemetry_map, telemetry_units,
            ):
                sample.meta["object"] = {"etag": reader.etag, "size": reader.size}
                yield sample
        finally:
            container.close()
            reader.close()
        return
    container = _open(path)
    try:
        yield from _decode(
            container, path, clip_id_base, float(keyframe_hz), clip_seconds, telemetry,
            threads, strategy, max_side, max_pixels, telemetry_map, telemetry_units,
        )
    finally:
        container.close()


def _decode(container, path, clip_id_base, hz, clip_seconds, telemetry, threads, strategy,
            max_side, max_pixels, telemetry_map, telemetry_units) -> Iterator[ClipSample]:
    """Decode ``container``'s video into clips of keyframes sampled at ``hz`` (each clip yielded
    as soon as its keyframes are complete, or, for an object, at the end of its stream)."""
    st = _open_video(container, path, strategy, threads, max_side, max_pixels)
    stream, codec_name, strategy, spec, coded_size = st.stream, st.codec_name, st.strategy, \
        st.spec, st.coded_size
    time_base, fps, nominal_period = st.time_base, st.fps, st.nominal_period

    # hashed while the first frames decode; an object's bytes are hashed as the decoder reads
    digest = _Later(path.digest) if isinstance(path, ObjectReader) else \
        _Background(file_digest, path)
    created = container_creation_time(container)
    tel, tel_warning = _load_sidecar(telemetry, telemetry_map, telemetry_units)
    sampler = _Sampler(hz, clip_seconds)
    warnings: list[str] = [tel_warning] if tel_warning else []
    first_pts = None
    last_time = -math.inf
    last_interval = 0.0
    last_duration = 0  # in time_base units; converted once at the end
    # int * num / den is correctly rounded, the same float as float(Fraction) (and 10x cheaper)
    tb_num, tb_den = time_base.numerator, time_base.denominator
    dropped = 0
    frame_size = None

    # an object's split clips wait for the end of the stream, when the digest has seen every
    # byte the decoder read: yielding the first one earlier would read the rest twice
    hold = isinstance(path, ObjectReader)

    def clip_samples(final_duration: float | None) -> Iterator[ClipSample]:
        if hold and final_duration is None:
            return
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
            sample = _sample(path, clip, length, clip_id_base, clip_seconds, digest.result(), hz,
                             fps, tel, warnings, codec_name,
                             coded_size if spec.lowres and coded_size else frame_size)
            if created:
                sample.meta["container_creation_time"] = created
            sample.meta["decode"] = strategy  # the DECODE_STRATEGIES entry that made it
            sample.meta["frames_decoded"] = sampler.frames  # so far in the recording
            yield sample

    # [largest packet pts, packets with data]: skipped frames count for the duration and length
    packet_pts: list = [None, 0]
    frames = _decoded_frames(container, stream, packet_pts, DECODE_AHEAD)
    try:
        for frame in frames:
            if frame_size is None:
                _check_size(path, frame.width, frame.height, max_side, max_pixels)
                frame_size = (frame.width, frame.height)
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
                time = (pts - first_pts) * tb_num / tb_den
            if time <= last_time:
                dropped += 1
                continue
            if math.isfinite(last_time):
                last_interval = time - last_time
            last_time = time
            last_duration = frame.duration or 0
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
    finally:
        frames.close()
    end_time, duration = _stream_end(path, st, sampler, packet_pts, first_pts, last_time,
                                     last_duration, last_interval, dropped, warnings)
    sampler.finish(end_time)
    yield from clip_samples(duration)



@dataclass
class _OpenedVideo:
    """A container's first video stream, its decoder configured, and its timing."""

    stream: object
    codec_name: str
    strategy: str
    spec: DecodeStrategy
    coded_size: tuple[int, int] | None
    time_base: Fraction
    fps: float
    nominal_period: float
    declared_s: float


def _open_video(container, path, strategy, threads, max_side, max_pixels) -> _OpenedVideo:
    """The first video stream with its decoder set up for ``strategy`` (raw streams, whose
    frame times are counted, always decode every frame), or a SourceError with the fix."""
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
    strategy = AUTO_STRATEGY if strategy == "auto" else strategy
    spec = DECODE_STRATEGIES[strategy]
    counted = bool(container.format.flags & _NO_TIMESTAMPS)  # raw streams: times are counted
    if counted and not spec.every_frame:
        strategy, spec = "all", DECODE_STRATEGIES["all"]  # so no frame may be skipped
    spec.configure(ctx, ctx.width, ctx.height, threads)
    coded_size = (ctx.width, ctx.height) if ctx.width and ctx.height else None

    time_base = stream.time_base or Fraction(1, 90000)
    fps = float(stream.average_rate) if stream.average_rate else math.nan
    if not math.isfinite(fps) and stream.guessed_rate:
        fps = float(stream.guessed_rate)
    nominal_period = 1.0 / fps if math.isfinite(fps) and fps > 0 else 0.0
    declared_s = float(stream.duration * time_base) if stream.duration else math.nan
    if not math.isfinite(declared_s) and container.duration:
        declared_s = container.duration / av.time_base
    return _OpenedVideo(stream, codec_name, strategy, spec, coded_size, time_base, fps,
                        nominal_period, declared_s)


def _stream_end(path, st: _OpenedVideo, sampler, packet_pts, first_pts, last_time,
                last_duration, last_interval, dropped, warnings) -> tuple[float, float]:
    """(time of the last frame or packet, duration) of a decoded stream; a stream with too few
    frames is refused, drops and truncation are noted in ``warnings``."""
    codec_name, spec, time_base = st.codec_name, st.spec, st.time_base
    max_packet_pts = packet_pts[0]
    if sampler.prev is None:
        raise SourceError(
            f"{path}: no video frame could be decoded ({codec_name}); the file is empty, "
            "truncated or corrupt: re-export it"
        )
    stream_frames = sampler.frames if spec.every_frame else packet_pts[1]
    if stream_frames < MIN_FRAMES and (spec.every_frame or spec.skip_frame == "NONREF"):
        raise SourceError(
            f"{path}: only {stream_frames} video frame decodes; a clip needs at least "
            f"{MIN_FRAMES} frames to be compared in time: re-export the whole clip or drop it"
        )
    if dropped:
        warnings.append(f"{dropped} frames with non-increasing timestamps dropped")
    period = st.nominal_period or float(last_duration * time_base) or last_interval
    end_time = last_time
    if max_packet_pts is not None and first_pts is not None:
        end_time = max(end_time, float((max_packet_pts - first_pts) * time_base))
    duration = end_time + period
    if math.isfinite(st.declared_s) and duration < st.declared_s - TRUNCATION_TOLERANCE_S \
            and not any("decoding stopped" in w for w in warnings):
        warnings.append(
            f"decoded {duration:.3f} s of a declared {st.declared_s:.3f} s (truncated file?)"
        )
    return end_time, duration


def _decoded_frames(container, stream, packet_pts: list, ahead: int) -> Iterator:
    """Every decoded frame of ``stream`` in presentation order; ``packet_pts[0]`` is kept at the
    largest packet pts seen, ``packet_pts[1]`` counts packets with data. With ``ahead`` > 0 a
    helper thread decodes up to ``ahead`` frames in advance (errors are re-raised here); closing
    the generator stops and joins it."""

    def decode() -> Iterator:
        for packet in container.demux(stream):
            if packet.pts is not None and (packet_pts[0] is None or packet.pts > packet_pts[0]):
                packet_pts[0] = packet.pts
            packet_pts[1] += packet.size > 0
            yield from packet.decode()

    if ahead <= 0:
        yield from decode()
        return
    handoff: queue.Queue = queue.Queue(maxsize=ahead)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for frame in decode():
                if not put(frame):
                    return
        except BaseException as err:  # noqa: BLE001 -- handed to the consumer, raised there
            put(err)
            return
        put(_DONE)

    thread = threading.Thread(target=run, name="clipdex-decode", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _load_sidecar(telemetry, mapping=None, units=None) -> tuple[Telemetry | None, str]:
    if telemetry is None:
        return None, ""
    units = units or {}
    try:
        return load_telemetry(telemetry, mapping=mapping, time_unit=units.get("time"),
                              speed_unit=units.get("speed")), ""
    except InputError as err:
        return None, f"telemetry ignored: {err}"


def _sample(path, clip, length, clip_id_base, clip_seconds, digest, hz, fps, tel, warnings,
            codec_name, frame_size) -> ClipSample:
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
        recording_id=digest,
        keyframes=keyframes,
        keyframe_times=times,
        duration_s=round(float(length), 6),
        telemetry=clip_tel,
        source_offset_s=float(clip.start_s),
        fps=fps,
        meta={
            "codec": codec_name,
            "warnings": clip_warnings,
            "width": frame_size[0] if frame_size else 0,  # the source's coded frame size
            "height": frame_size[1] if frame_size else 0,
            # decoded frames averaged into each keyframe (the tent window)
            "window_frames": list(clip.window_frames),
        },
    )
