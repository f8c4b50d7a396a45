"""Pure-NumPy twins of every public kernel, written for clarity, not speed.

Same signatures and outputs as the JIT kernels; the tests compare the two. Popcount is
``np.bitwise_count``; DCT matrices are written out by hand (no SciPy).
"""

import math

import numpy as np

from .align import Alignment
from .embedding import (
    BLOCKS,
    COLOUR_OFFSET,
    COLOUR_SIZE,
    DESCRIPTOR_DIM,
    HOG_OFFSET,
    HOG_SIZE,
    STATS_CENTER,
    STATS_OFFSET,
    TELEMETRY_DIM,
    TELEMETRY_SCALE,
    THUMB_OFFSET,
    WORK_SIZE,
)
from .retime import PROPOSALS_PER_RATE, RetimeLines

LUMA = np.array([0.299, 0.587, 0.114])


def area_matrix(n_in: int, n_out: int) -> np.ndarray:
    """``float64[n_out, n_in]``: fraction of output bin k covered by input pixel i."""
    m = np.zeros((n_out, n_in))
    for k in range(n_out):
        for i in range(n_in):  # bin k spans [k*n_in, (k+1)*n_in), pixel i [i*n_out, (i+1)*n_out)
            overlap = min((k + 1) * n_in, (i + 1) * n_out) - max(k * n_in, i * n_out)
            m[k, i] = max(overlap, 0) / n_in
    return m


def luma(frames: np.ndarray) -> np.ndarray:
    return frames.astype(np.float64) @ LUMA


def luma_area_downsample(frames, out_h, out_w):
    rows, cols = area_matrix(frames.shape[1], out_h), area_matrix(frames.shape[2], out_w)
    return (rows @ luma(frames) @ cols.T).astype(np.float32)


# ---------------------------------------------------------------- PDQ
def _box_pass(x: np.ndarray, axis: int, full: int) -> np.ndarray:
    """The reference's 1-D box filter: out[k] = mean(x[max(0, k+half-full) : min(n, k+half)])."""
    n = x.shape[axis]
    half = (full + 2) // 2
    x = np.moveaxis(x, axis, 0)
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])
    k = np.arange(n)
    lo, hi = np.maximum(0, k + half - full), np.minimum(n, k + half)
    out = (csum[hi] - csum[lo]) / (hi - lo).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.moveaxis(out, 0, axis)


def pdq_dct_matrix() -> np.ndarray:
    i, j = np.arange(1, 17)[:, None], np.arange(64)[None, :]
    return math.sqrt(2 / 64) * np.cos(math.pi / 2 / 64 * i * (2 * j + 1))


def pdq256(frames, normalise_contrast=False):
    n, h, w = frames.shape[:3]
    hashes, quality = np.zeros((n, 32), np.uint8), np.zeros(n, np.uint8)
    if h < 5 or w < 5:
        return hashes, quality
    win_rows, win_cols = (w + 127) // 128, (h + 127) // 128  # along rows / along columns
    dct = pdq_dct_matrix()
    for f in range(n):
        img = luma(frames[f])
        for _ in range(2):  # Jarosz: two (rows, columns) box passes = a tent
            img = _box_pass(img, 1, win_rows)
            img = _box_pass(img, 0, win_cols)
        ri = ((np.arange(64) + 0.5) * h / 64).astype(int)
        ci = ((np.arange(64) + 0.5) * w / 64).astype(int)
        small = img[np.ix_(ri, ci)]
        gain = 1.0
        if normalise_contrast:  # kernels.pdq: QUALITY_REF_STD, QUALITY_MAX_GAIN
            std = math.sqrt(((small - small.sum() / small.size) ** 2).sum() / small.size)
            gain = 8.0 if std * 8.0 <= 48.0 else max(1.0, math.floor(48.0 / std * 16.0) / 16.0)
        dv = np.trunc((small[:-1, :] - small[1:, :]) * (gain * 100.0) / 255)
        dh = np.trunc((small[:, :-1] - small[:, 1:]) * (gain * 100.0) / 255)
        quality[f] = min(int(np.abs(dv).sum() + np.abs(dh).sum()) // 90, 100)
        coeffs = (dct @ small @ dct.T).ravel()  # bit k = 16*i + j
        median = np.sort(coeffs)[127]
        hashes[f] = np.packbits((coeffs > median)[::-1])  # hex-string order: bit 255 first
    return hashes, quality


# ---------------------------------------------------------------- pHash
def phash64(frames):
    small = luma_area_downsample(frames, 32, 32).astype(np.float64)
    k, i = np.arange(8)[:, None], np.arange(32)[None, :]
    dct = np.cos(np.pi * k * (2 * i + 1) / 64)
    out = np.zeros((frames.shape[0], 8), np.uint8)
    for f in range(frames.shape[0]):
        low = dct @ small[f] @ dct.T
        out[f] = np.packbits((low > np.median(low)).ravel())
    return out


def box_area_matrix(n_in: int, lo: float, hi: float, n_out: int) -> np.ndarray:
    """``float64[n_out, n_in]``: share of output bin k of ``[lo, hi)`` (cell units) covered by
    input cell i, divided by the bin's width."""
    width = (hi - lo) / n_out
    m = np.zeros((n_out, n_in))
    for k in range(n_out):
        b0, b1 = lo + k * width, lo + (k + 1) * width
        for i in range(n_in):
            m[k, i] = max(0.0, min(b1, i + 1.0) - max(b0, float(i))) / width
    return m


def phash64_boxes(luma, boxes):
    n, h, w = luma.shape
    k, i = np.arange(8)[:, None], np.arange(32)[None, :]
    dct = np.cos(np.pi * k * (2 * i + 1) / 64)
    out = np.zeros((n, len(boxes), 8), np.uint8)
    for v, (top, bottom, left, right) in enumerate(boxes):
        if bottom <= top or right <= left:
            continue
        rows = box_area_matrix(h, top * h, bottom * h, 32)
        cols = box_area_matrix(w, left * w, right * w, 32)
        for f in range(n):
            low = dct @ (rows @ luma[f].astype(np.float64) @ cols.T) @ dct.T
            out[f, v] = np.packbits((low > np.median(low)).ravel())
    return out


# ---------------------------------------------------------------- Hamming
def hamming_matrix(a, b):
    return np.bitwise_count(a[:, None, :] ^ b[None, :, :]).sum(-1).astype(np.uint16)


def hamming_topk(queries, base, k):
    n, m = queries.shape[0], base.shape[0]
    dist = np.full((n, k), -1, np.int32)
    idx = np.full((n, k), -1, np.int64)
    full = hamming_matrix(queries, base).astype(np.int64)
    kk = min(k, m)
    for q in range(n):
        order = np.argsort(full[q], kind="stable")[:kk]
        idx[q, :kk] = order
        dist[q, :kk] = full[q, order]
    return dist, idx


def hamming_within(queries, base, radius):
    full = hamming_matrix(queries, base)
    qi, bi = np.nonzero(full.astype(np.int64) <= radius)
    return qi.astype(np.int64), bi.astype(np.int64), full[qi, bi].astype(np.uint16)


# ---------------------------------------------------------------- alignment
def align_keyframe_pairs(hashes, valid, clip_start, clip_count, pair_a, pair_b, radius,
                         max_shift):
    p = len(pair_a)
    res = {k: np.zeros(p, np.int32) for k in ("shift", "matches", "overlap")}
    first, last = np.full(p, -1, np.int32), np.full(p, -1, np.int32)
    mean = np.zeros(p, np.float32)
    for q in range(p):
        a0, na = clip_start[pair_a[q]], clip_count[pair_a[q]]
        b0, nb = clip_start[pair_b[q]], clip_count[pair_b[q]]
        if na == 0 or nb == 0:
            continue
        dist = hamming_matrix(hashes[a0:a0 + na], hashes[b0:b0 + nb]).astype(np.int64)
        both = valid[a0:a0 + na, None] & valid[None, b0:b0 + nb]
        candidates = []
        for s in range(-(nb - 1), na):
            if max_shift >= 0 and abs(s) > max_shift:
                continue
            pos = [(j + s, j) for j in range(nb) if 0 <= j + s < na and both[j + s, j]]
            hits = [(i, dist[i, j]) for i, j in pos if dist[i, j] <= radius]
            total = sum(d for _, d in hits)
            mean_d = total / len(hits) if hits else 0.0
            # rank: most matches, smallest mean distance, smallest |s|, smallest s
            key = (-len(hits), mean_d if hits else 0.0, abs(s), s)
            candidates.append((key, s, len(hits), len(pos), hits, mean_d))
        if not candidates:
            continue
        _, s, m, ov, hits, mean_d = min(candidates, key=lambda c: c[0])
        res["shift"][q], res["matches"][q], res["overlap"][q] = s, m, ov
        if hits:
            first[q], last[q] = hits[0][0], hits[-1][0]
        mean[q] = mean_d
    return Alignment(res["shift"], res["matches"], res["overlap"], first, last, mean)


# ---------------------------------------------------------------- re-timed lines
def _retime_best_line(d, va, vb, votes, lo, rates, rate_rows, radius, min_matches):
    """(mean, mapped, matched, rate index, intercept) of the closest proposed line."""
    nb = len(vb)
    top = np.argsort(-votes, axis=1, kind="stable")[:, :PROPOSALS_PER_RATE]
    r_of = np.repeat(rate_rows, top.shape[1])
    k_of = top[rate_rows].ravel()
    keep = votes[r_of, k_of] >= min_matches
    r_of, c_of = r_of[keep], lo + k_of[keep]
    if not len(r_of):
        return np.inf, 0, 0, -1, 0
    jb = np.arange(nb)
    ia = np.rint(c_of[:, None] + rates[r_of][:, None] * jb[None, :]).astype(np.int64)
    inside = (ia >= 0) & (ia < len(va)) & vb[None, :]
    ia_ok = np.where(inside, ia, 0)
    on = inside & va[ia_ok]
    dist = d[ia_ok, jb[None, :]]
    mapped = on.sum(axis=1)
    total = np.where(on, dist, 0).sum(axis=1)
    matched = (on & (dist <= radius)).sum(axis=1)
    mean = np.where(mapped >= max(min_matches, 1), total / np.maximum(mapped, 1), np.inf)
    best = int(np.argmin(mean))
    if not np.isfinite(mean[best]):
        return np.inf, 0, 0, -1, 0
    return float(mean[best]), int(mapped[best]), int(matched[best]), int(r_of[best]), int(c_of[best])


def retime_lines(hashes, valid, clip_start, clip_count, pair_a, pair_b, rates, one, other, radius,
                 min_matches):
    p = len(pair_a)
    n_matches = np.zeros(p, np.int32)
    mean_one, mean = np.full(p, np.inf), np.full(p, np.inf)
    mapped, matched = np.zeros(p, np.int32), np.zeros(p, np.int32)
    rate, intercept = np.full(p, -1, np.int32), np.zeros(p, np.int64)
    for q in range(p):
        a0, na = clip_start[pair_a[q]], clip_count[pair_a[q]]
        b0, nb = clip_start[pair_b[q]], clip_count[pair_b[q]]
        if na == 0 or nb == 0:
            continue
        va, vb = valid[a0:a0 + na], valid[b0:b0 + nb]
        d = hamming_matrix(hashes[a0:a0 + na], hashes[b0:b0 + nb]).astype(np.int64)
        i, j = np.nonzero((d <= radius) & va[:, None] & vb[None, :])
        n_matches[q] = len(i)
        if len(i) < min_matches or len(i) == 0:
            continue
        c = np.rint(i[None, :] - rates[:, None] * j[None, :]).astype(np.int64)  # [rates, matches]
        lo = int(c.min())
        width = int(c.max()) - lo + 1
        votes = np.zeros((len(rates), width), np.int64)
        np.add.at(votes, (np.repeat(np.arange(len(rates)), len(i)), (c - lo).ravel()), 1)
        mean_one[q] = _retime_best_line(d, va, vb, votes, lo, rates, np.array([one]), radius,
                                        min_matches)[0]
        best = _retime_best_line(d, va, vb, votes, lo, rates, np.flatnonzero(other), radius,
                                 min_matches)
        mean[q], mapped[q], matched[q], rate[q], intercept[q] = best
    return RetimeLines(n_matches, mean_one, mean, mapped, matched, rate, intercept)


# ---------------------------------------------------------------- embedding
def area_rgb(frames, size):
    rows, cols = area_matrix(frames.shape[1], size), area_matrix(frames.shape[2], size)
    return np.einsum("ki,nijc,lj->nklc", rows, frames.astype(np.float64), cols)


def keyframe_descriptors(frames):
    out = np.zeros((frames.shape[0], DESCRIPTOR_DIM), np.float32)
    to_ycc = np.array([[0.299, 0.587, 0.114], [-0.168736, -0.331264, 0.5],
                       [0.5, -0.418688, -0.081312]]) / 255.0
    for f, rgb in enumerate(area_rgb(frames, WORK_SIZE)):
        ycc = rgb @ to_ycc.T
        y = ycc[..., 0]
        padded = np.pad(y, 1, mode="edge")
        gx = 0.5 * (padded[1:-1, 2:] - padded[1:-1, :-2])
        gy = 0.5 * (padded[2:, 1:-1] - padded[:-2, 1:-1])
        mag = np.hypot(gx, gy)
        theta = np.arctan2(gy, gx)
        theta = np.where(theta < 0, theta + np.pi, theta)
        pos = theta / (np.pi / 8) - 0.5
        b0 = np.floor(pos)
        frac = pos - b0
        o0 = b0.astype(int) % 8
        hog = np.zeros((4, 4, 8))
        cy, cx = np.divmod(np.arange(32 * 32), 32)
        cy, cx = cy // 8, cx // 8
        np.add.at(hog, (cy, cx, o0.ravel()), ((1 - frac) * mag).ravel())
        np.add.at(hog, (cy, cx, (o0.ravel() + 1) % 8), (frac * mag).ravel())
        d = out[f]
        d[HOG_OFFSET:HOG_OFFSET + HOG_SIZE] = (hog / 64).ravel()
        d[COLOUR_OFFSET:COLOUR_OFFSET + COLOUR_SIZE] = ycc.reshape(4, 8, 4, 8, 3).mean((1, 3)).ravel()
        d[STATS_OFFSET:STATS_OFFSET + 8] = [
            y.mean(), y.std(), ycc[..., 1].mean(), ycc[..., 2].mean(), ycc[..., 1].std(),
            ycc[..., 2].std(), mag.mean(), np.clip((0.3 - y) / 0.2, 0, 1).mean()]
        d[THUMB_OFFSET:] = y.reshape(8, 4, 8, 4).mean((1, 3)).ravel()
    return out


def telemetry_stats(time, values, tel_start, tel_count):
    out = np.zeros((len(tel_start), TELEMETRY_DIM), np.float32)
    for c, (s, n) in enumerate(zip(tel_start, tel_count, strict=True)):
        t, v = time[s:s + n], values[s:s + n].astype(np.float64)
        if n == 0 or np.isnan(v).all():
            continue
        speed, accel, yaw, steer = (v[~np.isnan(v[:, col]), col] for col in range(4))
        row = [1.0]
        row += [speed.mean(), speed.std(), speed.min(), speed.max()] if speed.size else [0] * 4
        row += [accel.min(), accel.max(), accel.std()] if accel.size else [0] * 3
        row += [np.abs(yaw).mean(), np.abs(yaw).max()] if yaw.size else [0] * 2
        ta = t[~np.isnan(v[:, 1])]
        dt = np.diff(ta)
        jerk = (np.diff(accel) / np.where(dt > 0, dt, 1))[dt > 0]
        row += [jerk.std(), np.abs(jerk).max()] if jerk.size else [0] * 2
        row += [(accel < -3.0).mean() if accel.size else 0.0]
        row += [(speed < 0.5).mean() if speed.size else 0.0]
        row += [np.abs(steer).mean(), np.abs(steer).max()] if steer.size else [0] * 2
        out[c] = row
    return out


def clip_embeddings(descriptors, kf_start, kf_count, tel_stats, projection, standardised=True):
    """Clip embeddings; ``standardised=False`` returns the raw input vectors instead."""
    from ._embedding_calibration import INPUT_CENTER, INPUT_SD

    out = np.zeros((len(kf_start), projection.shape[1]), np.float32)
    out_raw = np.zeros((len(kf_start), INPUT_CENTER.shape[0]))
    for c, (s, n) in enumerate(zip(kf_start, kf_count, strict=True)):
        if n == 0:
            continue
        d = descriptors[s:s + n].astype(np.float64)
        mean, std = d.mean(0), d.std(0)
        colour = mean[COLOUR_OFFSET:COLOUR_OFFSET + COLOUR_SIZE].copy()
        colour[0::3] -= 0.5
        thumbs = d[:, THUMB_OFFSET:]
        structure = mean[THUMB_OFFSET:] - mean[THUMB_OFFSET:].mean()
        if n > 1:
            steps = np.abs(np.diff(thumbs, axis=0))
            motion = np.concatenate([steps.mean(0), [steps.mean(), steps.mean(1).max()]])
        else:
            motion = np.zeros(thumbs.shape[1] + 2)
        blocks = [
            mean[HOG_OFFSET:HOG_OFFSET + HOG_SIZE],
            np.concatenate([colour, mean[STATS_OFFSET:STATS_OFFSET + 8] - STATS_CENTER]),
            std[:HOG_SIZE + COLOUR_SIZE],
            structure,
            motion,
            tel_stats[c].astype(np.float64) * TELEMETRY_SCALE,
        ]
        raw = np.concatenate(blocks)
        if not standardised:
            out_raw[c] = raw
            continue
        # (x - center) / max(sd, 0.1 * block mean sd) / sqrt(block size) * weight
        parts, o = [], 0
        for (_, size, weight), block in zip(BLOCKS, blocks, strict=True):
            sd = INPUT_SD[o:o + size]
            sd = np.maximum(sd, 0.1 * sd.mean() + 1e-12)
            parts.append((block - INPUT_CENTER[o:o + size]) / sd / np.sqrt(size) * weight)
            o += size
        if tel_stats[c, 0] == 0:
            parts[-1] = np.zeros_like(parts[-1])
        x = np.concatenate(parts)
        y = x @ projection.astype(np.float64)
        out[c] = y / np.linalg.norm(y)
    return out if standardised else out_raw


def embedding_projection(in_dim=None, out_dim=128, seed=20261126):
    from .embedding import embedding_projection as _projection  # plain NumPy already

    return _projection(in_dim, out_dim, seed)


# ---------------------------------------------------------------- greedy k-centre
def greedy_kcentre(vectors, n_pick, min_sq, allowed):
    """Farthest-point traversal, one point at a time (ties: lowest index)."""
    vectors = vectors.astype(np.float64)
    min_sq = min_sq.astype(np.float64)
    live = allowed.copy()
    picks, dists = [], []
    for _ in range(n_pick):
        if not live.any():
            break
        score = np.where(live, min_sq, -1.0)
        i = int(np.argmax(score))
        picks.append(i)
        dists.append(math.sqrt(score[i]))
        live[i] = False
        min_sq[i] = 0.0
        d = ((vectors - vectors[i]) ** 2).sum(axis=1)
        min_sq = np.where(live, np.minimum(min_sq, d), min_sq)
    return (np.array(picks, np.int64), np.array(dists, np.float32), min_sq.astype(np.float32))


def min_sq_distances(vectors, centres):
    if len(centres) == 0:
        return np.full(len(vectors), np.inf, np.float32)
    d = ((vectors[:, None, :].astype(np.float64) - centres[None, :, :]) ** 2).sum(axis=2)
    return d.min(axis=1).astype(np.float32)


# ---------------------------------------------------------------- temporal (YUV planes)
def yuv_area_accumulate(y, u, v, factor, chroma_factor, acc, slots, weights, full_range=False,
                        matrix="bt601", scratch=None, rows=None):
    from .temporal import YUV_MATRICES

    out_h, out_w = acc.shape[2:4]
    rows = (factor[0], chroma_factor[0]) if rows is None else rows

    def box(plane, f, ry):
        fy, fx = f
        p = plane[: out_h * fy, : out_w * fx].astype(np.float64)
        first = (fy - ry) // 2
        return p.reshape(out_h, fy, out_w, fx)[:, first:first + ry].mean(axis=(1, 3))

    luma_p = box(y, factor, rows[0])
    cb = box(u, chroma_factor, rows[1]) - 128.0
    cr = box(v, chroma_factor, rows[1]) - 128.0
    if not full_range:
        luma_p, cb, cr = (luma_p - 16.0) * 255.0 / 219.0, cb * 255.0 / 224.0, cr * 255.0 / 224.0
    cr_r, cb_g, cr_g, cb_b = YUV_MATRICES[matrix]
    rgb = np.stack([luma_p + cr_r * cr, luma_p + cb_g * cb + cr_g * cr, luma_p + cb_b * cb])
    rgb = np.clip(rgb, 0.0, 255.0)
    for slot, weight in zip(slots, weights, strict=True):
        acc[slot] += (float(weight) * rgb).astype(np.float32)


# ---------------------------------------------------------------- banded LSH
def band_collisions(hashes, valid, is_query, group, masks, radius, bands=None):
    """All qualifying pairs by brute force, each with the first band it collides in (sorted)."""
    words = hashes.view(np.uint64)
    bands = range(masks.shape[0]) if bands is None else bands
    n = len(hashes)
    if n == 0 or len(bands) == 0 or radius < 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int32)
    dist = hamming_matrix(hashes, hashes).astype(np.int64)
    # first band each pair collides in (L = none)
    first = np.full((n, n), masks.shape[0], np.int64)
    for t in range(masks.shape[0] - 1, -1, -1):
        m = words & masks[t]
        same = (m[:, None, :] == m[None, :, :]).all(axis=2)
        first[same] = t
    i, j = np.triu_indices(n, 1)
    keep = (valid[i] & valid[j] & (is_query[i] | is_query[j]) & (group[i] != group[j])
            & (dist[i, j] <= radius) & np.isin(first[i, j], np.asarray(list(bands))))
    i, j = i[keep], j[keep]
    return i.astype(np.int64), j.astype(np.int64), dist[i, j].astype(np.int32)


def depthwise_conv2d(x, weight, stride, scale, shift, relu6=True):
    """Per-channel k x k convolution with TensorFlow "SAME" zero padding, one shifted slice of
    the padded input per tap, then ``* scale + shift`` and the clamp to [0, 6]."""
    n, h, w, c = x.shape
    k = weight.shape[1]
    oh, ow = -(-h // stride), -(-w // stride)
    ph, pw = max((oh - 1) * stride + k - h, 0), max((ow - 1) * stride + k - w, 0)
    xp = np.pad(x.astype(np.float64), ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    out = np.zeros((n, oh, ow, c))
    for i in range(k):
        for j in range(k):
            out += xp[:, i: i + stride * oh: stride, j: j + stride * ow: stride] * weight[:, i, j]
    out = out * scale + shift
    return (np.clip(out, 0.0, 6.0) if relu6 else out).astype(np.float32)
