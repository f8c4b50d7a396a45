"""``clipdex report``: a region's curator report, a static page set that opens offline.

``--out DIR`` (default ``REGION/report/``) writes ``DIR/index.html`` and the pages beside it;
``--out FILE.html`` writes that page and the rest under ``FILE_files/``. Pages:

* **overview** (``index.html``): region summary (clips, recordings, drives, hours, duplicates
  removed, storage, last jobs) and the plots (:mod:`engine.surfaces.plots`: rarity distribution, triggers
  by count, clips over time, a map of the embeddings with the duplicate groups and the selection
  marked);
* **rare** (paged): the rarest recordings with why, their triggers and their nearest clips from
  other recordings;
* **duplicates** and **partials** (paged): duplicate groups as aligned keyframe strips, partial
  overlaps as two strips with the shared span marked;
* **selection**: the region's latest manifest (or ``--manifest``): what was chosen, by which
  share, why.

Pictures are the keyframe previews stored at ingest (JPEG strips, copied as files into
``img/``), never decoded from sources; plots are PNG files beside them. Nothing is loaded from
anywhere else. Lists are bounded (``top``, ``max_groups``, ``max_partials``) and paged, so a
100,000-clip region's report stays small (``benchmarks/report_scale.py``).

The report is written through the egress gate (:func:`engine.sovereignty.egress.open_target`): inside the
region's folder freely; elsewhere only when the region's policy grants ``ids`` and
``thumbnails`` to that place, after the audit line, and then it shows only the fields granted
(:mod:`engine.surfaces.views`). Another region's folder is always refused.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
from pathlib import Path

from PIL import Image

from engine.errors import InputError
from engine.sovereignty import egress
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.surfaces import plots
from engine.surfaces.pages import render
from engine.surfaces.views import PAGE_SIZE, RegionData, latest_manifest, now, pages

#: what a report page carries: required, then shown only when granted
REPORT_FIELDS = ("ids", "thumbnails")
REPORT_OPTIONAL = ("scores", "relations", "counts", "embeddings", "source_paths", "telemetry")
#: the file that marks a folder as a clipdex report (only such a folder is ever replaced)
MARKER = ".clipdex-report"
#: picture bytes at most; past it a clip is shown by its small stored thumbnail
IMAGE_BUDGET = 18_000_000


class _Links:
    """Where things are, seen from one page of the static report."""

    def __init__(self, assets: Path, prefix: str, index_href: str, data: RegionData):
        self.assets = assets  # the folder pages (but the index in FILE.html mode) and img/ go to
        self.prefix = prefix
        self.index_href = index_href
        self.data = data
        self.fields_thumbnails = data.allows("thumbnails")
        self.written: dict[int, str] = {}
        self.bytes = 0
        self._small = None

    def at(self, prefix: str, index_href: str) -> _Links:
        """The same links seen from another page (shares what was written)."""
        other = object.__new__(_Links)
        other.__dict__.update(self.__dict__)
        other.prefix, other.index_href = prefix, index_href
        other._shared = self
        return other

    def _root(self) -> _Links:
        return getattr(self, "_shared", self)

    def img(self, row: int) -> str:
        root = self._root()
        if row not in root.written:
            (jpeg, _), = self.data.store.previews([row])
            if jpeg is not None and root.bytes + len(jpeg) <= IMAGE_BUDGET:
                (self.assets / "img").mkdir(exist_ok=True)
                (self.assets / "img" / f"r{row}.jpg").write_bytes(jpeg)
                root.bytes += len(jpeg)
                root.written[row] = f"img/r{row}.jpg"
            else:  # over the budget (or erased meanwhile): the 64x36 thumbnail, inline
                root.written[row] = _small_png(self.data.store, row)
        ref = root.written[row]
        return ref if ref.startswith("data:") else self.prefix + ref

    def clip(self, clip_id: str) -> None:
        return None  # the static report has no page per clip: `clipdex serve` does

    def page(self, kind: str, n: int = 1, args: str = "") -> str:
        if kind == "overview":
            return self.index_href
        return self.prefix + (f"{kind}.html" if kind == "selection" else f"{kind}-{n}.html")


def _small_png(store: RegionStore, row: int) -> str:
    thumb = store.read_rows("thumbnails", row, row + 1)[0]
    buf = io.BytesIO()
    Image.fromarray(thumb).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def build_report(store: RegionStore, out: str | Path, *, top: int = 40, max_groups: int = 60,
                 max_partials: int = 60, neighbours: int = 3, manifest: str | Path | None = None,
                 home: Home | None = None) -> Path:
    """Write the report to ``out`` (a folder, or an ``.html`` file with ``FILE_files/`` beside
    it) through the egress gate (``home`` None: only inside the region's folder). Returns the
    page to open."""
    out = Path(out)
    as_file = out.suffix.lower() in (".html", ".htm")
    table = store.clip_table()
    beside = out.with_name(out.stem + "_files") if as_file else out  # every name written below
    also = [beside, beside.with_name(f".{beside.name}.tmp-{os.getpid()}"),
            beside.with_name(f".{beside.name}.old-{os.getpid()}"), out.with_name(out.name + ".tmp")]
    target = egress.open_target(home, store.region, out, operation="report", fields=REPORT_FIELDS,
                                optional=REPORT_OPTIONAL, records=len(table), kind="report", also=also)
    out = target.path
    assets = out.with_name(out.stem + "_files") if as_file else out
    for folder in (assets,):
        if folder.exists() and (not folder.is_dir() or (any(folder.iterdir()) and not (folder / MARKER).exists())):
            raise InputError(f"{folder} exists and is not a clipdex report folder; choose a new or empty "
                             "folder (or a FILE.html) for --out")
    if as_file and out.is_dir():
        raise InputError(f"{out} is a folder; give a FILE.html or a folder path without .html")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = assets.with_name(f".{assets.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    (tmp / MARKER).write_text("written by clipdex report; the whole folder is replaced on a rerun\n",
                              encoding="utf-8")
    try:
        index_html = _write_pages(store, tmp, set(target.fields), as_file, out, assets, top=top,
                                  max_groups=max_groups, max_partials=max_partials,
                                  neighbours=neighbours, manifest=manifest)
        if as_file:
            (tmp / "index.html").unlink(missing_ok=True)
        else:
            (tmp / "index.html").write_text(index_html, encoding="utf-8")
        old = assets.with_name(f".{assets.name}.old-{os.getpid()}")
        if assets.exists():
            assets.rename(old)
        tmp.rename(assets)
        shutil.rmtree(old, ignore_errors=True)
        if as_file:
            page = out.with_name(out.name + ".tmp")
            page.write_text(index_html, encoding="utf-8")
            page.replace(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out if as_file else out / "index.html"


def _write_pages(store: RegionStore, folder: Path, fields: set[str], as_file: bool, out: Path,
                 assets: Path, *, top: int, max_groups: int, max_partials: int, neighbours: int,
                 manifest) -> str:
    """Write every page but the overview into ``folder``; returns the overview's HTML."""
    data = RegionData(store, fields)
    region = store.region.name
    # seen from a page inside the assets folder, and from the overview
    index_href = f"../{out.name}" if as_file else "index.html"
    inner = _Links(folder, "", index_href, data)
    top_prefix = f"{assets.name}/" if as_file else ""
    outer = inner.at(top_prefix, out.name if as_file else "index.html")

    rare_rows = data.rare_list(top)
    reps = data.group_list()[:max_groups]
    parts = data.partial_list()[:max_partials]
    sel = None
    mpath = Path(manifest) if manifest is not None else latest_manifest(store.region)
    if mpath is not None and data.allows("ids"):
        from engine.curation.manifest import read_manifest

        records = [r for r in read_manifest(mpath) if r.get("region") in (None, "", region)]
        sel = data.selection(records, source=f"manifest {mpath.name}")
    counts = {"rare": len(rare_rows), "duplicates": len(reps), "partials": len(parts)}
    nav_items = [("overview", "Overview"), ("rare", f"Rare ({len(rare_rows)})"),
                 ("duplicates", f"Duplicates ({len(data.groups) if data.allows('relations') else 0})"),
                 ("partials", f"Partial overlaps ({len(data.partial_list())})"), ("selection", "Selection")]

    def nav(links: _Links) -> list[tuple[str, str, str]]:
        return [(k, label, links.page(k)) for k, label in nav_items]

    common = {"region": region, "generated": f"generated {now()}",
              "heading": f"clipdex report — region {region}"}
    if fields != set(REPORT_FIELDS) | set(REPORT_OPTIONAL):
        common["policy_note"] = (f"Written outside the region: shows only what region {region}'s policy lets "
                                 f"leave it ({', '.join(sorted(fields))}).")

    def write(name: str, template: str, current: str, **ctx) -> None:
        html = render(template, L=inner, nav=nav(inner), current=current, title=f"{current} · {region}",
                      **common, **ctx)
        (folder / name).write_text(html, encoding="utf-8")

    for kind, rows, size in (("rare", rare_rows, PAGE_SIZE), ("duplicates", reps, PAGE_SIZE // 2),
                             ("partials", parts, PAGE_SIZE // 2)):
        n_pages = pages(len(rows), size)
        for p in range(1, n_pages + 1):
            chunk = rows[(p - 1) * size:p * size]
            if kind == "rare":
                write(f"rare-{p}.html", "rare.html", "rare", cards=data.rare_cards(chunk, neighbours),
                      page=p, n_pages=n_pages, first=(p - 1) * size + 1)
            elif kind == "duplicates":
                write(f"duplicates-{p}.html", "duplicates.html", "duplicates",
                      groups=data.duplicate_groups(chunk, max_members=5), page=p, n_pages=n_pages)
            else:
                write(f"partials-{p}.html", "partials.html", "partials", parts=data.partial_overlaps(chunk),
                      page=p, n_pages=n_pages)
    plot_refs = []
    (folder / "img").mkdir(exist_ok=True)
    for key, (title, fn) in plots.PLOTS.items():
        png = fn(data, sel["rows"] if sel else None) if key == "map" else fn(data)
        if png is not None:
            (folder / "img" / f"plot-{key}.png").write_bytes(png)
            plot_refs.append((key, title, f"{top_prefix}img/plot-{key}.png"))
    map_href = "img/plot-map.png" if any(k == "map" for k, *_ in plot_refs) and sel else None
    write("selection.html", "selection.html", "selection", sel=sel, sel_title="Selection", form=None,
          region_path=str(store.region.path), map_href=map_href, error=None)
    views = [("rare", "Rarest recordings", outer.page("rare"), f"{counts['rare']} shown, why and nearest neighbours"),
             ("duplicates", "Duplicate groups", outer.page("duplicates"), f"{counts['duplicates']} largest as aligned strips"),
             ("partials", "Partial overlaps", outer.page("partials"), f"{counts['partials']} longest with the shared span"),
             ("selection", "Selection", outer.page("selection"),
              f"{sel['count']} clips from {sel['source']}" if sel else "no manifest yet")]
    return render("overview.html", L=outer, nav=nav(outer), current="overview", title=f"overview · {region}",
                  s=data.summary(), plots=plot_refs, views=views, **common)
