"""The feature arrays of a region (``features.zarr``): append-only, chunked by rows, read
only below the committed ends."""

from __future__ import annotations

import numpy as np

from engine.errors import StoreError
from engine.store.model import (
    HASH_BYTES,
    N_CROP_VIEWS,
    PHASH_BYTES,
    PREVIEW_BYTES,
    PREVIEW_FRAMES,
    TELEMETRY_STATS_DIM,
    THUMB_SHAPE,
)

# feature arrays: name -> (row axis kind, trailing shape, dtype, rows per chunk)
_ARRAYS = {
    "keyframe_hashes": ("kf", (HASH_BYTES,), "uint8", 16384),
    "keyframe_phash": ("kf", (PHASH_BYTES,), "uint8", 16384),
    "keyframe_quality": ("kf", (), "uint8", 65536),
    "keyframe_times": ("kf", (), "float32", 65536),
    "clip_embeddings": ("clip", None, "float32", 4096),  # trailing shape set at creation
    "thumbnails": ("clip", THUMB_SHAPE, "uint8", 256),
    "telemetry_stats": ("clip", (TELEMETRY_STATS_DIM,), "float32", 4096),
    "preview_jpeg": ("clip", (PREVIEW_BYTES,), "uint8", 32),
    "preview_times": ("clip", (PREVIEW_FRAMES,), "float32", 4096),
    # 64-bit pHash of each crop view of each keyframe (engine.ingest.features.crop_view_phash)
    "keyframe_view_phash": ("kf", (N_CROP_VIEWS, PHASH_BYTES), "uint8", 1024),
    # 64-bit pHash of the whole view mirrored left to right (opt-in mirrored matching)
    "keyframe_mirror_phash": ("kf", (PHASH_BYTES,), "uint8", 16384),
}

#: arrays added after the first release: a store written before lacks them. A writable store gets
#: them at open, sized to the committed clips and filled with their fill value (NaN: "not
#: recorded"); a read-only one reads the fill value (:meth:`RegionStore.telemetry_stats`)
_LATER_ARRAYS = {"telemetry_stats": float("nan"), "preview_jpeg": 0, "preview_times": float("nan"),
                 "keyframe_view_phash": 0, "keyframe_mirror_phash": 0}  # zeros: not computed (never matched)


class FeatureArrays:
    """The feature arrays of a :class:`engine.store.region.RegionStore` (a mixin: it uses
    the store's path, writer check and snapshot)."""

    # ------------------------------------------------------------------ feature arrays
    @property
    def features(self):
        if self._features is None:
            import zarr

            try:
                if self.features_path.exists():
                    writable = self._writable()
                    self._features = zarr.open_group(self.features_path, mode="r+" if writable else "r")
                    if writable:
                        self._add_later_arrays()
                else:
                    self._features = zarr.open_group(self.features_path, mode="w")
                    for name, (_, trailing, dtype, rows) in _ARRAYS.items():
                        trailing = (self.embedding_dim,) if trailing is None else trailing
                        self._features.create_array(
                            name, shape=(0, *trailing), chunks=(rows, *trailing), dtype=dtype,
                            fill_value=_LATER_ARRAYS.get(name, 0),
                        )
            except Exception as err:  # zarr raises many types; all mean the same to the user
                raise StoreError(
                    f"feature store {self.features_path} cannot be opened ({err}); "
                    "run `clipdex verify --repair` or restore the region from a backup"
                ) from err
        return self._features

    def _add_later_arrays(self) -> None:
        """Create the arrays an older store lacks, as long as the committed rows (their fill value
        stands for "not recorded"), so every reader and ``verify`` see full-length arrays."""
        have = set(self._features.array_keys())
        for name, fill in _LATER_ARRAYS.items():
            if name in have:
                continue
            axis, trailing, dtype, rows = _ARRAYS[name]
            snap = self.snapshot()
            end = snap.clip_end if axis == "clip" else snap.kf_end
            try:
                self._features.create_array(name, shape=(-(-end // rows) * rows, *trailing),
                                            chunks=(rows, *trailing), dtype=dtype, fill_value=fill)
            except Exception:  # another process opening the store created it first
                if name not in set(self._features.array_keys()):
                    raise

    def _has_array(self, name: str) -> bool:
        return name in set(self.features.array_keys())

    def has_array(self, name: str) -> bool:
        """Does the feature store hold ``name`` (a read-only store written before it may not)?"""
        return self._has_array(name)

    def _write_rows(self, name: str, start: int, values: np.ndarray) -> None:
        arr = self.features[name]
        end = start + len(values)
        if end > arr.shape[0]:
            rows = _ARRAYS[name][3]
            new_len = max(end, arr.shape[0] + arr.shape[0] // 4)
            new_len = -(-new_len // rows) * rows  # whole chunks: fewer metadata rewrites
            arr.resize((new_len, *arr.shape[1:]))
        if len(values):
            arr[start:end] = values

    def read_rows(self, name: str, start: int, end: int) -> np.ndarray:
        """Rows ``[start, end)`` of a feature array (callers pass committed ends only)."""
        if end <= start:
            arr = self.features[name]
            return np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
        try:
            arr = self.features[name]
            if end > arr.shape[0]:
                raise StoreError(f"the array has {arr.shape[0]} rows, fewer than the {end} the catalog "
                                 "committed")
            return np.asarray(arr[start:end])
        except Exception as err:
            raise StoreError(
                f"feature array {name!r} rows {start}:{end} in {self.features_path} cannot be read "
                f"({err}); run `clipdex verify --region {self.region.name} --repair`"
            ) from err

    def read_rows_at(self, name: str, rows: np.ndarray) -> np.ndarray:
        """The given rows (int64, committed only) of a feature array, in one batched read."""
        rows = np.asarray(rows, dtype=np.int64)
        arr = self.features[name]
        if len(rows) == 0:
            return np.zeros((0, *arr.shape[1:]), dtype=arr.dtype)
        try:
            return np.asarray(arr.get_orthogonal_selection(rows))
        except Exception as err:
            raise StoreError(
                f"feature array {name!r} rows {rows[:5].tolist()}... in {self.features_path} cannot be read "
                f"({err}); run `clipdex verify --region {self.region.name} --repair`"
            ) from err

    # ------------------------------------------------------------------ verify / repair
    def array_layout(self) -> dict[str, tuple[str, int, int]]:
        """name -> (row axis "kf"/"clip", rows per chunk, rows allocated) of each feature array."""
        have = set(self.features.array_keys())
        return {name: (axis, self.features[name].chunks[0], int(self.features[name].shape[0]))
                for name, (axis, *_) in _ARRAYS.items() if name in have}

    def reset_chunk(self, name: str, chunk: int) -> None:
        """Overwrite one whole chunk with zeros without reading it (a corrupt chunk becomes
        readable again; callers first take the clips with rows in it out of the catalog)."""
        self._require_writer()
        arr = self.features[name]
        rows = arr.chunks[0]
        lo, hi = chunk * rows, min((chunk + 1) * rows, arr.shape[0])
        if hi > lo:
            arr[lo:hi] = np.zeros((hi - lo, *arr.shape[1:]), dtype=arr.dtype)
