"""Synthetic media for the source tests (and the decode benchmark): no test functions here.

Content is a function of *time* (seconds), not of the frame number, so the same scene encoded at
10 and 30 fps, or in two codecs, shows the same picture at the same time.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def scene(t: float, width: int, height: int) -> np.ndarray:
    """RGB uint8 [H, W, 3]: a moving gradient, a moving box and a slow colour drift at time t."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = t * 0.9
    red = 127 + 120 * np.sin(x / width * 6.0 + phase * 3.0)
    green = 127 + 120 * np.cos(y / height * 4.0 - phase * 2.0)
    blue = np.full_like(x, 60 + 50 * np.sin(phase))
    image = np.stack([red, green, blue], axis=-1)
    box_w, box_h = width // 5, height // 4
    cx = int((width - box_w) * (0.5 + 0.45 * np.sin(t * 1.3)))
    cy = int((height - box_h) * (0.5 + 0.45 * np.cos(t * 0.7)))
    image[cy:cy + box_h, cx:cx + box_w] = (250, 250, 30)
    return np.clip(image, 0, 255).astype(np.uint8)


def textured_scene(t: float, width: int, height: int, texture: np.ndarray) -> np.ndarray:
    """Camera-like motion over a noise texture (for realistic bitrates in benchmarks)."""
    th, tw = texture.shape[:2]
    ox = int(t * 90) % (tw - width)
    oy = int(40 + 30 * np.sin(t)) % (th - height)
    frame = texture[oy:oy + height, ox:ox + width].copy()
    box = int((width - 200) * (0.5 + 0.5 * np.sin(t * 0.8)))
    frame[height // 3:height // 3 + 120, box:box + 200] = (230, 40, 40)
    return frame


def write_video(
    path: Path,
    *,
    codec: str = "libx264",
    fps: int = 10,
    seconds: float = 3.0,
    size: tuple[int, int] = (160, 96),
    pix_fmt: str = "yuv420p",
    start: float = 0.0,
    times: list[float] | None = None,
    rotation: int = 0,
    audio: bool = False,
    options: dict | None = None,
    bit_rate: int | None = None,
    content=scene,
    pts_offset: int = 0,
    container_format: str | None = None,
) -> Path:
    """Encode ``content(start + t)`` at frame times t (``times``: VFR times in seconds).

    ``rotation`` stores the picture turned clockwise plus a display matrix that turns it back;
    ``pts_offset`` (in time-base units) makes the first pts non-zero.
    """
    width, height = size
    time_base = Fraction(1, 1000) if times is not None else Fraction(1, fps)
    with av.open(str(path), mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        turned = rotation % 180 != 0
        stream.width, stream.height = (height, width) if turned else (width, height)
        stream.pix_fmt = pix_fmt
        if bit_rate:
            stream.bit_rate = bit_rate
        if times is not None:
            stream.codec_context.time_base = time_base
        if rotation:
            stream.set_display_rotation(rotation)
        audio_stream = container.add_stream("aac", rate=16000) if audio else None
        frame_times = times if times is not None else [i / fps for i in range(round(seconds * fps))]
        for i, t in enumerate(frame_times):
            image = content(start + t, width, height)
            if rotation:
                # store the picture turned clockwise; the display matrix turns it back
                image = np.ascontiguousarray(np.rot90(image, k=-(rotation // 90)))
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = (round(t * 1000) if times is not None else i) + pts_offset
            frame.time_base = time_base
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if audio_stream is not None:
            _write_tone(container, audio_stream, seconds)
    return path


def _write_tone(container, audio_stream, seconds: float) -> None:
    rate = 16000
    samples = (0.2 * np.sin(np.arange(int(seconds * rate)) * 2 * np.pi * 440 / rate)).astype(
        np.float32
    )
    for start in range(0, samples.size, 1024):
        chunk = samples[start:start + 1024][None, :]
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in audio_stream.encode(frame):
            container.mux(packet)
    for packet in audio_stream.encode():
        container.mux(packet)


def write_audio_only(path: Path, seconds: float = 1.0) -> Path:
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("aac", rate=16000)
        _write_tone(container, stream, seconds)
    return path
