"""Sources: find clips (:func:`discover`) and decode them into :class:`ClipSample` objects.

``iter_clips(item, **opts)`` dispatches on ``item.kind``. Options it understands (each passed only
to the kinds that use it): ``keyframe_hz`` (all), ``clip_seconds`` (video and image folders),
``threads``, ``strategy``, ``max_side``, ``max_pixels`` (video), ``image_fps`` and ``reduced``
(image folders),
``telemetry_map`` and ``telemetry_units`` (video and image folders: sidecar column mapping and
units, see :func:`load_telemetry`).
"""

from __future__ import annotations

from collections.abc import Iterator

from engine.errors import SourceError
from engine.sources.discover import SourceItem, discover, validate_clip_id
from engine.sources.images import iter_image_clips
from engine.sources.sampling import pick_nearest, sample_times
from engine.sources.telemetry import align_telemetry, load_telemetry
from engine.sources.video import iter_video_clips
from engine.types import ClipSample

__all__ = [
    "SourceItem",
    "align_telemetry",
    "discover",
    "iter_clips",
    "iter_image_clips",
    "iter_video_clips",
    "load_telemetry",
    "pick_nearest",
    "sample_times",
    "validate_clip_id",
]

_TELEMETRY_OPTS = {"telemetry_map", "telemetry_units"}
_VIDEO_OPTS = {"keyframe_hz", "clip_seconds", "threads", "strategy", "max_side", "max_pixels",
               *_TELEMETRY_OPTS}
_IMAGE_OPTS = {"keyframe_hz", "clip_seconds", "image_fps", "reduced", *_TELEMETRY_OPTS}
_ZARR_OPTS = {"keyframe_hz"}
_ALL_OPTS = _VIDEO_OPTS | _IMAGE_OPTS | _ZARR_OPTS


def iter_clips(item: SourceItem, **opts) -> Iterator[ClipSample]:
    """Clips of one discovered source; an ``"error"`` item raises its :class:`SourceError`."""
    unknown = set(opts) - _ALL_OPTS
    if unknown:
        raise TypeError(f"iter_clips got unknown options {sorted(unknown)}; use {sorted(_ALL_OPTS)}")
    if item.kind == "video":
        kwargs = {k: v for k, v in opts.items() if k in _VIDEO_OPTS}
        if item.version:
            kwargs["version"] = item.version  # an object on object storage
        return iter_video_clips(item.path, clip_id_base=item.clip_id_base,
                                telemetry=item.telemetry, **kwargs)
    if item.kind == "images":
        kwargs = {k: v for k, v in opts.items() if k in _IMAGE_OPTS}
        if "image_fps" in kwargs:
            kwargs["fps"] = kwargs.pop("image_fps")
        return iter_image_clips(item.path, clip_id_base=item.clip_id_base,
                                telemetry=item.telemetry, **kwargs)
    if item.kind == "zarr":
        from engine.sources.zarr_clips import iter_zarr_clips  # written by the lead; lazy

        kwargs = {k: v for k, v in opts.items() if k in _ZARR_OPTS}
        return iter_zarr_clips(item.path, clip_id_base=item.clip_id_base, **kwargs)
    if item.kind == "error":
        raise SourceError(item.message or f"{item.path}: discovery failed")
    raise SourceError(f"{item.path}: unknown source kind {item.kind!r}; expected video, images "
                      "or zarr")
