"""The report's and the app's plots, drawn by matplotlib (Agg, PNG bytes), each with a title,
labelled axes and a legend: the rarity distribution, triggers by count, clips over time and a
2-D map of the clip embeddings (principal components by scikit-learn) coloured by condition or
event, with the duplicate groups and a selection marked.

Each function takes a :class:`engine.surfaces.views.RegionData` and returns PNG bytes, or None when the
fields it needs are not shown (see :mod:`engine.surfaces.views`)."""

from __future__ import annotations

import io
import math

import numpy as np

#: points drawn on the embedding map at most (a seeded sample; marked clips always drawn)
MAP_MAX_POINTS = 20000
_DPI = 100


def _fig(w: float = 7.0, h: float = 3.6):
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=_DPI, layout="constrained")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def rarity_distribution(data) -> bytes | None:
    """Histogram of the density scores, stacked by what ranks each clip (event, looks, driving)."""
    if not (data.allows("scores") and data.allows("counts")):
        return None
    fig = _fig()
    ax = fig.add_subplot()
    res = data.rarity
    ax.set_title(f"Rarity distribution ({len(res.rows):,} clips)")
    ax.set_xlabel("density score: mean distance to the 10 nearest unrelated clips (higher = rarer)")
    ax.set_ylabel("clips")
    if len(res.rows) == 0:
        _empty(ax, "no clips")
        return _png(fig)
    basis = np.asarray(res.basis if res.basis is not None else ["appearance"] * len(res.rows))
    labels = {"event": "ranked by a rare event", "appearance": "ranked by looks", "dynamics": "ranked by driving"}
    colours = {"event": "#d62728", "appearance": "#1f77b4", "dynamics": "#2ca02c"}
    groups = [(b, res.scores[basis == b]) for b in ("appearance", "dynamics", "event") if np.any(basis == b)]
    bins = np.histogram_bin_edges(res.scores, bins=40)
    ax.hist([g for _, g in groups], bins=bins, stacked=True, color=[colours[b] for b, _ in groups],
            label=[f"{labels[b]} ({len(g):,})" for b, g in groups])
    top = data.rare_list(10)
    if top:
        cut = min(float(res.scores[np.flatnonzero(np.isin(res.rows, top))].min()), float(res.scores.max()))
        ax.axvline(cut, color="k", ls="--", lw=1, label="lowest score among the 10 rarest recordings")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def triggers_by_count(data) -> bytes | None:
    """Horizontal bars: clips and distinct drives per trigger."""
    if not data.allows("counts"):
        return None
    names = data.trigger_names_all()
    fig = _fig(7.0, max(2.4, 0.32 * len(names) + 1.2))
    ax = fig.add_subplot()
    ax.set_title("Triggers by count")
    ax.set_xlabel("count")
    ax.set_ylabel("trigger")
    if not names:
        _empty(ax, "no triggers fired in this region")
        return _png(fig)
    keys = data.table.drive_keys()
    drives = []
    for name, _ in names:
        rows = [r for r, ts in data.triggers.items() if any(t[0] == name for t in ts)]
        drives.append(len({keys[data.pos[r]] for r in rows}))
    y = np.arange(len(names))
    ax.barh(y + 0.2, [c for _, c in names], height=0.4, color="#1f77b4", label="clips")
    ax.barh(y - 0.2, drives, height=0.4, color="#ff7f0e", label="drives (or recordings)")
    ax.set_yticks(y, [n.replace("_", " ") for n, _ in names])
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def clips_over_time(data) -> bytes | None:
    """Clips per day (per hour within two days) of their recorded start, stacked by whether a
    situation trigger fired."""
    if not data.allows("counts"):
        return None
    from engine.scenes.rarity import SITUATION_TRIGGERS

    fig = _fig()
    ax = fig.add_subplot()
    t = data.table.start_time
    ok = np.isfinite(t)
    unknown = int((~ok).sum())
    ax.set_title("Clips over time" + (f" ({unknown:,} without a recorded start not shown)" if unknown else ""))
    ax.set_ylabel("clips")
    if not ok.any():
        ax.set_xlabel("recorded start (UTC)")
        _empty(ax, "no clip has a recorded start time")
        return _png(fig)
    import matplotlib.dates as mdates

    situ = np.asarray([bool(set(data.trigger_names(int(r))) & SITUATION_TRIGGERS) for r in data.table.rows])
    days = t[ok] / 86400.0  # matplotlib date numbers: days since 1970-01-01
    span = float(days.max() - days.min())
    width = 1.0 / 24 if span <= 2 else 1.0
    lo = math.floor(days.min() / width) * width
    bins = np.arange(lo, days.max() + width + 1e-9, width)
    if len(bins) < 2:
        bins = np.array([lo, lo + width])
    ax.hist([t[ok & ~situ] / 86400.0, t[ok & situ] / 86400.0], bins=bins, stacked=True,
            color=["#1f77b4", "#d62728"], label=["no situation trigger", "with a situation trigger"])
    ax.xaxis.set_major_locator(mdates.AutoDateLocator())
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(ax.xaxis.get_major_locator()))
    ax.set_xlabel(f"recorded start (UTC), {'hourly' if width < 1 else 'daily'} bins")
    ax.legend(loc="upper right", fontsize=8)
    return _png(fig)


def embedding_map(data, selected: list[int] | None = None) -> bytes | None:
    """PCA of the clip embeddings to 2-D, coloured by condition (or event), duplicate groups
    and the selection marked."""
    if not data.allows("embeddings"):
        return None
    from sklearn.decomposition import PCA

    from engine.scenes.rarity import CONDITION_TRIGGERS, SITUATION_TRIGGERS

    fig = _fig(7.0, 5.2)
    ax = fig.add_subplot()
    table = data.table
    n = len(table)
    ax.set_title(f"Map of the clip embeddings ({n:,} clips, PCA to 2-D)")
    if n < 3:
        ax.set_xlabel("PC 1")
        ax.set_ylabel("PC 2")
        _empty(ax, "too few clips for a map")
        return _png(fig)
    vectors = data.store.read_rows_at("clip_embeddings", table.rows)
    pca = PCA(n_components=2, random_state=0)
    xy = pca.fit_transform(np.asarray(vectors, np.float64))
    var = pca.explained_variance_ratio_
    ax.set_xlabel(f"PC 1 ({100 * var[0]:.0f} % of variance)")
    ax.set_ylabel(f"PC 2 ({100 * var[1]:.0f} % of variance)")
    # a clip's class: its picture condition, else its first event, else none
    cls = np.full(n, "none", dtype=object)
    for r, ts in data.triggers.items():
        names = {x[0] for x in ts}
        cond = sorted(names & CONDITION_TRIGGERS)
        ev = sorted((names & SITUATION_TRIGGERS) - CONDITION_TRIGGERS)
        cls[data.pos[r]] = cond[0] if cond else (ev[0] if ev else "none")
    marked = np.zeros(n, bool)
    dup_pos = np.zeros(n, bool)
    if data.allows("relations"):
        for members in data.groups.values():
            for m in members:
                if m in data.pos:
                    dup_pos[data.pos[m]] = True
        marked |= dup_pos
    sel = np.zeros(n, bool)
    for r in selected or ():
        if r in data.pos:
            sel[data.pos[r]] = True
    marked |= sel
    rng = np.random.default_rng(0)
    draw = np.ones(n, bool)
    if n > MAP_MAX_POINTS:
        draw = np.zeros(n, bool)
        draw[rng.choice(n, MAP_MAX_POINTS, replace=False)] = True
        draw |= marked
    kinds = [k for k, _ in _by_count(cls[draw])]
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
               "#bcbd22", "#7f7f7f"]
    for i, k in enumerate(kinds[:len(palette)]):
        m = draw & (cls == k)
        colour = "#c7c7c7" if k == "none" else palette[i % len(palette)]
        ax.scatter(xy[m, 0], xy[m, 1], s=6 if k == "none" else 12, c=colour, alpha=0.6, linewidths=0,
                   label=f"{k.replace('_', ' ')} ({int((cls == k).sum()):,})", rasterized=True)
    if dup_pos.any():
        ax.scatter(xy[dup_pos, 0], xy[dup_pos, 1], s=40, facecolors="none", edgecolors="k", linewidths=0.7,
                   label=f"in a duplicate group ({int(dup_pos.sum()):,})", rasterized=True)
    if sel.any():
        ax.scatter(xy[sel, 0], xy[sel, 1], s=22, marker="x", c="#d62728", linewidths=0.9,
                   label=f"selected ({int(sel.sum()):,})", rasterized=True)
    if n > MAP_MAX_POINTS:
        ax.text(0.01, 0.01, f"{int(draw.sum()):,} of {n:,} clips drawn (a sample, marked clips all)",
                transform=ax.transAxes, fontsize=7, color="#666")
    ax.legend(loc="upper right", fontsize=7, markerscale=1.5, title="condition or event", title_fontsize=7)
    return _png(fig)


def _by_count(values) -> list[tuple[str, int]]:
    from collections import Counter

    c = Counter(values.tolist())
    # "none" first: the grey background, drawn under the coloured clips
    return sorted(c.items(), key=lambda kv: (kv[0] != "none", -kv[1], kv[0]))


PLOTS = {
    "rarity": ("Rarity distribution", rarity_distribution),
    "triggers": ("Triggers by count", triggers_by_count),
    "time": ("Clips over time", clips_over_time),
    "map": ("Map of the embeddings", embedding_map),
}
