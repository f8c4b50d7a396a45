"""``clipdex serve``: the report's views, live, in a local read-only web app (Flask).

Per region: the overview (summary and plots), the rarest recordings, duplicate groups, partial
overlaps, a clip list filtered by trigger, drive and recorded time, a page per clip (keyframes,
metadata, triggers, relations, "more like this") and a selection preview (``select_clips``
without writing a manifest). It binds 127.0.0.1 by default and never changes a region's clips
or results (like any reader it may refresh derived caches: rarity scores, indexes).

**What it shows.** A page leaves the region (it goes to a browser, a place outside every
region), so for each region it shows only the fields that region's policy lets leave it for
``"*"`` (:func:`engine.surfaces.views.shown_fields`); a region whose policy grants nothing shows its name
and nothing else, and a route needing a field that is not granted answers 404. Serving is
audited once per region when the app starts (:func:`engine.sovereignty.egress.send`, operation ``serve``,
the fields that may be shown).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from flask import Flask, Response, abort, g, request, url_for

from engine.errors import ClipdexError, NotFoundError
from engine.sovereignty import egress
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.surfaces import plots
from engine.surfaces.pages import render
from engine.surfaces.views import PAGE_SIZE, RegionData, latest_manifest, now, pages, shown_fields


class _Links:
    """Where things are in the app, for one region."""

    def __init__(self, region: str, fields: frozenset[str]):
        self.region = region
        self.fields_thumbnails = "thumbnails" in fields

    def img(self, row: int) -> str:
        return url_for("preview", region=self.region, row=row)

    def clip(self, clip_id: str) -> str:
        return url_for("clip", region=self.region, clip_id=clip_id)

    def page(self, kind: str, n: int = 1, args: str = "") -> str:
        if kind == "overview":
            return url_for("region", region=self.region)
        base = url_for(kind, region=self.region)
        if kind in ("selection",):
            return base
        return f"{base}?page={n}" + (f"&{args}" if args else "")


def create_app(home: Home, regions: Sequence[str]) -> Flask:
    """The app serving ``regions`` of ``home`` (each under ``/r/REGION/``)."""
    regions = list(dict.fromkeys(regions))
    for r in regions:
        home.region(r)  # unknown region: RegionError now, not on the first request
    app = Flask("clipdex")
    app.config["CLIPDEX_HOME"] = home
    fields = {r: shown_fields(home.region(r), inside=False) for r in regions}
    for r in regions:  # the audit line first: what may leave, to a browser ("*")
        if fields[r]:
            with RegionStore.open(home.region(r)) as store:
                n = len(store.clip_table())
            egress.send(home.region(r), egress.ANYWHERE, operation="serve", fields=(),
                        optional=sorted(fields[r]), records=n)
    cache: dict[tuple[str, int], RegionData] = {}
    plot_cache: dict[tuple[str, int, str], bytes | None] = {}
    lock = threading.RLock()

    def data_for(region: str) -> RegionData:
        """The region's views at its current catalog version, built once (a store per thread:
        SQLite connections stay in the thread that opened them)."""
        if region not in fields:
            abort(404)
        stores = g.setdefault("stores", {})
        if region not in stores:
            stores[region] = RegionStore.open(home.region(region))
        store = stores[region]
        version = store.snapshot().version
        with lock:
            d = cache.get((region, version))
            if d is None:
                d = RegionData(store, fields[region])
                if fields[region] & {"scores"}:
                    d.rarity  # noqa: B018  (computed once, under the lock)
                for key in [k for k in cache if k[0] == region]:
                    del cache[key]
                cache[(region, version)] = d
                return d
        # the cached views with this thread's own connection
        clone = object.__new__(RegionData)
        clone.__dict__.update(d.__dict__)
        clone.store = store
        return clone

    @app.teardown_appcontext
    def _close(_exc) -> None:
        for store in g.pop("stores", {}).values():
            store.close()

    def common(region: str, current: str) -> dict:
        f = fields[region]
        L = _Links(region, f)
        nav = [("home", "Regions", url_for("index"))]
        nav += [(k, label, L.page(k)) for k, label, need in (
            ("overview", "Overview", None), ("rare", "Rare", "scores"), ("duplicates", "Duplicates", "relations"),
            ("partials", "Partial overlaps", "relations"), ("clips", "Clips", "ids"),
            ("selection", "Selection preview", "ids")) if need is None or need in f]
        note = "" if f >= {"ids", "thumbnails", "scores", "relations", "counts"} else (
            f"Region {region}'s policy lets only {', '.join(sorted(f)) or 'nothing'} leave it; "
            "nothing else of it is shown.")
        return {"L": L, "nav": nav, "current": current, "region": region, "policy_note": note,
                "generated": f"live, {now()}", "heading": f"clipdex — region {region}",
                "title": f"{current} · {region}"}

    def need(region: str, *names: str) -> None:
        if region not in fields or not all(n in fields[region] for n in names):
            abort(404)

    def page_arg() -> int:
        try:
            return max(1, int(request.args.get("page", "1")))
        except ValueError:
            return 1

    @app.errorhandler(ClipdexError)
    def _clipdex_error(err):
        return Response(f"<!doctype html><title>error</title><p>{_esc(str(err))}</p>", status=400,
                        mimetype="text/html")

    @app.route("/")
    def index():
        rows = [{"name": r, "jurisdiction": home.region(r).jurisdiction, "fields": sorted(fields[r]),
                 "href": url_for("region", region=r)} for r in regions]
        return render("index.html", regions=rows, nav=[("home", "Regions", url_for("index"))], current="home",
                      region=", ".join(regions), generated=f"live, {now()}", heading="clipdex", title="regions")

    @app.route("/r/<region>/")
    def region(region: str):
        need(region)
        d = data_for(region)
        ctx = common(region, "overview")
        plot_refs = [(k, title, url_for("plot", region=region, name=k)) for k, (title, fn) in plots.PLOTS.items()
                     if _plot_allowed(k, fields[region])]
        views = [(k, label, ctx["L"].page(k), "") for k, label, need_ in (
            ("rare", "Rarest recordings", "scores"), ("duplicates", "Duplicate groups", "relations"),
            ("partials", "Partial overlaps", "relations"), ("clips", "All clips, filtered", "ids"),
            ("selection", "Selection preview", "ids")) if need_ in fields[region]]
        return render("overview.html", s=d.summary(), plots=plot_refs, views=views, **ctx)

    @app.route("/r/<region>/plot/<name>.png")
    def plot(region: str, name: str):
        need(region)
        if name not in plots.PLOTS or not _plot_allowed(name, fields[region]):
            abort(404)
        d = data_for(region)
        key = (region, d.version, name)
        with lock:
            if key not in plot_cache:
                plot_cache[key] = plots.PLOTS[name][1](d)
            png = plot_cache[key]
        if png is None:
            abort(404)
        return Response(png, mimetype="image/png")

    @app.route("/r/<region>/preview/<int:row>.jpg")
    def preview(region: str, row: int):
        need(region, "thumbnails", "ids")
        d = data_for(region)
        if row not in d.pos:
            abort(404)
        (jpeg, _), = d.store.previews([row])
        if jpeg is None:
            abort(404)
        return Response(jpeg, mimetype="image/jpeg", headers={"Cache-Control": "max-age=300"})

    @app.route("/r/<region>/rare")
    def rare(region: str):
        need(region, "ids", "scores")
        d = data_for(region)
        rows = d.rare_list(200)
        n_pages, p = pages(len(rows)), page_arg()
        chunk = rows[(p - 1) * PAGE_SIZE:p * PAGE_SIZE]
        return render("rare.html", cards=d.rare_cards(chunk, 3), page=p, n_pages=n_pages,
                      first=(p - 1) * PAGE_SIZE + 1, **common(region, "rare"))

    def relation_page(region: str, kind: str, listed, shown, key: str):
        """One page of a region's duplicate groups or partial overlaps, half a page's cards."""
        need(region, "ids", "relations")
        d = data_for(region)
        items, size = listed(d), PAGE_SIZE // 2
        n_pages, p = pages(len(items), size), page_arg()
        return render(f"{kind}.html", **{key: shown(d, items[(p - 1) * size:p * size])}, page=p,
                      n_pages=n_pages, **common(region, kind))

    @app.route("/r/<region>/duplicates")
    def duplicates(region: str):
        return relation_page(region, "duplicates", RegionData.group_list, RegionData.duplicate_groups,
                             "groups")

    @app.route("/r/<region>/partials")
    def partials(region: str):
        return relation_page(region, "partials", RegionData.partial_list, RegionData.partial_overlaps,
                             "parts")

    @app.route("/r/<region>/clips")
    def clips(region: str):
        need(region, "ids")
        from urllib.parse import urlencode

        from engine.scenes.query import parse_time

        d = data_for(region)
        f = {k: (request.args.get(k) or "").strip() or None for k in ("trigger", "drive", "after", "before")}
        error = None
        try:
            after, before = parse_time(f["after"]), parse_time(f["before"])
        except ClipdexError as err:
            error, after, before = str(err), None, None
        rows = d.clip_rows(trigger=f["trigger"], drive=f["drive"], after=after, before=before)
        n_pages, p = pages(len(rows)), page_arg()
        chunk = rows[(p - 1) * PAGE_SIZE:p * PAGE_SIZE]
        prev = d.previews(chunk)
        args = urlencode({k: v for k, v in f.items() if v})
        return render("clips.html", cards=[d.card(r, prev) for r in chunk], total=len(rows), page=p,
                      n_pages=n_pages, f=f, args=args, action=url_for("clips", region=region),
                      trigger_names=d.trigger_names_all(), drives=d.drive_names()[:500], error=error,
                      **common(region, "clips"))

    @app.route("/r/<region>/clip/<clip_id>")
    def clip(region: str, clip_id: str):
        need(region, "ids")
        d = data_for(region)
        try:
            row = d.store.clip_row(clip_id)
        except NotFoundError:
            abort(404)
        if row not in d.pos:
            abort(404)
        c = d.clip_detail(row)
        return render("clip.html", c=c, **{**common(region, "clips"), "title": f"{clip_id} · {region}"})

    @app.route("/r/<region>/selection")
    def selection(region: str):
        need(region, "ids")
        from engine.curation.select import parse_mix, read_manifest, select_clips

        d = data_for(region)
        budget = request.args.get("budget")
        form = {"action": url_for("selection", region=region), "budget": budget or max(10, len(d.table) // 10),
                "mix": request.args.get("mix") or "rare=0.3,diverse=0.6,random=0.1",
                "seed": request.args.get("seed") or "0"}
        sel, error, title = None, None, "Selection preview"
        try:
            if budget:
                s = select_clips(d.store, int(budget), mix=parse_mix(form["mix"]), seed=int(form["seed"]))
                sel = d.selection([x.record() for x in s.chosen], source="a preview, not written")
            else:
                m = latest_manifest(home.region(region))
                if m is not None:
                    title = "Selection: the region's latest manifest"
                    sel = d.selection([r for r in read_manifest(m) if r.get("region") in (None, "", region)],
                                      source=f"manifest {m.name}")
        except (ClipdexError, ValueError) as err:
            error = str(err)
        return render("selection.html", sel=sel, sel_title=title, form=form, error=error, map_href=None,
                      region_path="REGION", **common(region, "selection"))

    return app


def _plot_allowed(name: str, fields: frozenset[str]) -> bool:
    return {"rarity": {"scores", "counts"}, "triggers": {"counts"}, "time": {"counts"},
            "map": {"embeddings"}}[name] <= fields


def _esc(text: str) -> str:
    import html

    return html.escape(text)


def serve(home: Home, regions: Sequence[str], host: str = "127.0.0.1", port: int = 8765) -> None:
    """Run the app until interrupted (Werkzeug's threaded server, as Flask runs it)."""
    app = create_app(home, regions)
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False)
