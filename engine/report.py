"""``clipdex report``: one static HTML page per region that opens offline.

Duplicate groups as thumbnail strips (representative first), the rarest clips with their
triggers, partial overlaps, and the distribution of rarity scores as an inline SVG histogram.
Thumbnails are embedded as PNG data URIs; the page loads nothing from anywhere.

The page is written through the egress gate (:func:`engine.egress.open_target`): inside the
region's folder freely; elsewhere only when the region's policy grants ``ids`` and
``thumbnails`` to that place (``scores``, ``relations`` and ``counts`` are shown only when granted
too), after the audit line. Another region's folder is always refused.
"""

from __future__ import annotations

import base64
import html
import io
import time
from pathlib import Path

import numpy as np
from PIL import Image

from . import egress
from .dedup import load_dedup
from .rarity import load_rarity
from .regions import Home
from .store import RegionStore

#: what a report page carries: required, then shown only when granted
REPORT_FIELDS = ("ids", "thumbnails")
REPORT_OPTIONAL = ("scores", "relations", "counts")


def _png(thumb: np.ndarray) -> str:
    buf = io.BytesIO()
    Image.fromarray(thumb).save(buf, format="PNG", optimize=True)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _histogram_svg(values: np.ndarray, bins: int = 30, width: int = 480, height: int = 120) -> str:
    if len(values) == 0:
        return "<p>no scores</p>"
    counts, edges = np.histogram(values, bins=bins)
    top = max(1, int(counts.max()))
    bw = width / bins
    bars = "".join(
        f'<rect x="{i * bw:.1f}" y="{height - c / top * (height - 14):.1f}" width="{bw - 1:.1f}" '
        f'height="{c / top * (height - 14):.1f}" fill="#4a7ab8"><title>{edges[i]:.3f}-{edges[i + 1]:.3f}: {c}</title></rect>'
        for i, c in enumerate(counts))
    return (f'<svg width="{width}" height="{height + 16}" role="img" aria-label="rarity histogram">{bars}'
            f'<text x="0" y="{height + 14}" font-size="11">{edges[0]:.3f}</text>'
            f'<text x="{width - 40}" y="{height + 14}" font-size="11">{edges[-1]:.3f}</text></svg>')


def build_report(store: RegionStore, out: str | Path, *, top: int = 30, max_groups: int = 50,
                 home: Home | None = None) -> Path:
    """Write the report page to ``out`` through the egress gate (``home`` None: only inside the
    region's folder)."""
    table = store.clip_table()
    target = egress.open_target(home, store.region, out, operation="report", fields=REPORT_FIELDS,
                                optional=REPORT_OPTIONAL, records=len(table), kind="report")
    page = _page(store, table, top, max_groups, set(target.fields))
    out = target.path
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def _page(store: RegionStore, table, top: int, max_groups: int, fields: set[str]) -> str:
    ids = dict(zip(table.rows.tolist(), table.clip_ids, strict=True))
    pairs, groups = load_dedup(store, table)
    rar = load_rarity(store)
    thumbs = store.read_rows("thumbnails", 0, table.snapshot.clip_end)
    trig: dict[int, set[str]] = {}
    for row, name, *_ in store.triggers():
        trig.setdefault(row, set()).add(name)

    def card(row: int, note: str = "") -> str:
        cid = html.escape(ids[row])
        return (f'<figure><img src="{_png(thumbs[row])}" alt="{cid}" width="128" height="72">'
                f'<figcaption>{cid}{("<br>" + html.escape(note)) if note else ""}</figcaption></figure>')

    parts = [f"<h1>clipdex report — region {html.escape(store.region.name)}</h1>"]
    if "counts" in fields:
        stats = store.stats()
        parts.append(
            f"<p>{stats['clips']} clips, {stats['keyframes']} keyframes, {stats['hours']} hours; "
            f"{len(groups)} duplicate groups, {sum(p.relation == 'partial' for p in pairs)} partial overlaps. "
            f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>")
    if "relations" in fields:
        parts.append("<h2>Duplicate groups</h2>")
        for rep, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:max_groups]:
            strip = card(rep, "representative") + "".join(card(m) for m in members if m != rep)
            parts.append(f'<div class="strip">{strip}</div>')
        if not groups:
            parts.append("<p>none</p>")
    if "scores" not in fields:
        rar = {}  # no scores: the rarest list and histogram are left out
    parts.append(f"<h2>Rarest {top} recordings</h2>")
    # one card per duplicate group (its representative, with the number of copies), as `rare`
    copies = {rep: len(members) - 1 for rep, members in groups.items()}
    in_group = {m for rep, members in groups.items() for m in members if m != rep}
    ranked = sorted((r for r in ids if r in rar and r not in in_group),
                    key=lambda r: (-rar[r][1], -rar[r][0]))[:top]
    parts.append('<div class="strip">' + "".join(
        card(r, f"rarity {rar[r][0]:.3f} (p{rar[r][1]:.0f}) {' '.join(sorted(trig.get(r, ())))}"
             + (f" +{copies[r]} copies" if copies.get(r) and "relations" in fields else "")) for r in ranked)
        + "</div>")
    if "scores" in fields:
        parts.append("<h2>Rarity scores</h2>" + _histogram_svg(np.array([rar[r][0] for r in ids if r in rar])))
    partial = [p for p in pairs if p.relation == "partial"][:200] if "relations" in fields else []
    if partial:
        parts.append("<h2>Partial overlaps</h2><table><tr><th>a</th><th>b</th><th>offset s</th><th>a span</th>"
                     "<th>b span</th></tr>" + "".join(
                         f"<tr><td>{html.escape(ids[p.a])}</td><td>{html.escape(ids[p.b])}</td><td>{p.offset_s:+.1f}</td>"
                         f"<td>{p.a_span[0]:.1f}-{p.a_span[1]:.1f}</td><td>{p.b_span[0]:.1f}-{p.b_span[1]:.1f}</td></tr>"
                         for p in partial) + "</table>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>clipdex report</title><style>"
            "body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:4px;font-size:11px}"
            ".strip{border-bottom:1px solid #ddd;padding:4px 0}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:2px 6px;font-size:12px}</style></head><body>"
            + "\n".join(parts) + "</body></html>")
    return page
