"""HTML of the report and the app: one set of Jinja templates (autoescaped), rendered with a
*linker* that says where pages, clip pages, previews and plots are (files next to the page in
the static report, routes in the app). No script, style sheet or font is loaded from anywhere:
the styles are inline and the pages work without JavaScript."""

from __future__ import annotations

from jinja2 import DictLoader, Environment, select_autoescape

from engine.surfaces.views import CELL_H, CELL_W

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans","Liberation Sans",Arial,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#263238;color:#fff;padding:10px 24px}
header h1{font-size:20px;margin:0 0 6px 0}
header nav a{color:#cfd8dc;margin-right:16px;text-decoration:none;font-size:14px}
header nav a.on{color:#fff;font-weight:600;border-bottom:2px solid #4fc3f7}
main{padding:12px 24px 40px 24px;max-width:1400px}
h2{font-size:18px;margin:22px 0 8px 0}
.muted{color:#666;font-size:13px}
.kv{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;margin:8px 0}
.kv div{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px}
.kv b{display:block;font-size:20px}
.plots{display:flex;flex-wrap:wrap;gap:12px}
.plots figure{margin:0;background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:6px}
.plots img{max-width:100%;height:auto}
.gallery{display:flex;flex-direction:column;gap:10px}
.card{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px 10px}
.card .id{font-weight:600;font-family:ui-monospace,monospace;font-size:13px}
.card a.id{color:#0d47a1;text-decoration:none}
.tag{display:inline-block;background:#e3f2fd;color:#0d47a1;border-radius:10px;padding:1px 8px;font-size:12px;margin:1px}
.tag.cond{background:#ede7f6;color:#4527a0}.tag.ev{background:#ffebee;color:#b71c1c}
.why{margin:4px 0;font-size:14px}
.row{display:flex;gap:14px;align-items:flex-start;flex-wrap:wrap}
.strip img{display:block;border-radius:3px;background:#222}
.near{display:flex;gap:10px;flex-wrap:wrap}
.near .card{padding:4px 6px;font-size:12px;display:flex;flex-direction:column;gap:2px}
.tl{position:relative;margin:6px 0 4px 0;overflow-x:auto}
.track{position:relative;height:%(trackh)dpx;margin:2px 0}
.track .bar{position:absolute;top:%(bartop)dpx;height:6px;background:#90a4ae;border-radius:3px}
.track .mark{position:absolute;top:-2px;height:%(markh)dpx;border:2px solid #ffa000;box-sizing:border-box;border-radius:4px;z-index:3;pointer-events:none}
.track .markbar{position:absolute;top:%(bartop)dpx;height:6px;background:#ffa000;border-radius:3px;z-index:2}
.track .cell{position:absolute;top:0;width:%(cw)dpx;height:%(ch)dpx;overflow:hidden;border:1px solid #fff;border-radius:3px;background:#222}
.track .cell img{height:%(ch)dpx;max-width:none;display:block}
.track .lab{position:absolute;top:%(labtop)dpx;font-size:12px;white-space:nowrap}
.axis{position:relative;height:16px;font-size:11px;color:#666;border-top:1px solid #bbb}
.axis span{position:absolute;top:1px}
.group{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:8px 10px;margin:10px 0}
table.t{border-collapse:collapse;background:#fff;font-size:13px}
table.t td,table.t th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.pager{margin:14px 0}.pager a,.pager span{margin-right:8px}
.nothumb{display:inline-block;background:#eceff1;color:#607d8b;font-size:12px;padding:6px 10px;border-radius:3px}
form.filters{display:flex;gap:10px;flex-wrap:wrap;align-items:end;background:#fff;border:1px solid #e0e0e0;padding:8px;border-radius:6px}
form.filters label{font-size:12px;display:flex;flex-direction:column}
.policy{background:#fff8e1;border:1px solid #ffe082;border-radius:6px;padding:6px 10px;font-size:13px;margin:8px 0}
"""
for _k, _v in {"cw": CELL_W, "ch": CELL_H, "trackh": CELL_H + 22, "bartop": CELL_H + 4, "labtop": CELL_H + 6, "markh": CELL_H + 14}.items():
    _CSS = _CSS.replace(f"%({_k})dpx", f"{_v}px")

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<link rel="icon" href="data:,"><title>{{ title }} · clipdex</title><style>{{ css|safe }}</style></head>
<body><header><h1>{{ heading }}</h1><nav>
{% for key, label, href in nav %}<a href="{{ href }}"{% if key == current %} class="on"{% endif %}>{{ label }}</a>{% endfor %}
</nav></header><main>
{% if policy_note %}<div class="policy">{{ policy_note }}</div>{% endif %}
{% block body %}{% endblock %}
<p class="muted">clipdex · region {{ region }} · {{ generated }}</p>
</main></body></html>"""

_MACROS = """
{% macro strip(L, c, h=68) -%}
{%- if c.has_preview -%}<img src="{{ L.img(c.row) }}" width="{{ (c.cells * h * 16 / 9)|round|int }}" height="{{ h }}" alt="keyframes of {{ c.clip_id }}">
{%- elif L.fields_thumbnails -%}<span class="nothumb">no keyframe preview (ingested before clipdex kept previews)</span>
{%- endif -%}
{%- endmacro %}

{% macro clip_link(L, c) -%}
{%- set href = L.clip(c.clip_id) -%}
{%- if href %}<a class="id" href="{{ href }}">{{ c.clip_id }}</a>{% else %}<span class="id">{{ c.clip_id }}</span>{% endif -%}
{%- endmacro %}

{% macro tags(names) -%}
{%- for n in names %}<span class="tag">{{ n|replace('_', ' ') }}</span>{% endfor -%}
{%- endmacro %}

{% macro meta(c) -%}
<span class="muted">{% if c.drive %}drive {{ c.drive }} · {% endif %}{% if c.start %}{{ c.start }} · {% endif %}{{ c.duration }}{% if c.group %} · duplicate group of {{ c.group.size }} (representative {{ c.group.rep_id }}){% endif %}</span>
{%- endmacro %}

{% macro timeline(L, tl) -%}
<div class="tl" style="width:{{ tl.width|round|int }}px">
{% for s in tl.strips %}
<div class="track" data-clip="{{ s.clip_id }}">
<div class="bar" style="left:{{ s.left|round(1) }}px;width:{{ s.width|round(1) }}px"></div>
{% for f in s.frames %}<div class="cell" style="left:{{ f.left|round(1) }}px" title="{{ s.clip_id }} at {{ '%.1f'|format(f.t) }} s"><img src="{{ L.img(s.row) }}" style="width:{{ s.cells * CW }}px;margin-left:-{{ f.cell * CW }}px" alt="{{ s.clip_id }} at {{ '%.1f'|format(f.t) }} s"></div>{% endfor %}
{% for left, width in s.marks %}<div class="mark" style="left:{{ left|round(1) }}px;width:{{ width|round(1) }}px" title="shared span"></div><div class="markbar" style="left:{{ left|round(1) }}px;width:{{ width|round(1) }}px"></div>{% endfor %}
<div class="lab" style="left:{{ s.left|round(1) }}px">{% set href = L.clip(s.clip_id) %}{% if href %}<a class="id" href="{{ href }}">{{ s.clip_id }}</a>{% else %}<b>{{ s.clip_id }}</b>{% endif %} <span class="muted">{{ s.label }}, {{ '%.1f'|format(s.duration_s) }} s</span>{% if not s.frames %} <span class="nothumb">no preview</span>{% endif %}</div>
</div>
{% endfor %}
<div class="axis">{% for x, t in tl.ticks %}<span style="left:{{ x|round(1) }}px">{{ t }}</span>{% endfor %}</div>
</div>
{%- endmacro %}

{% macro pager(L, kind, page, n_pages, args='') -%}
{% if n_pages > 1 %}<div class="pager">page {{ page }} of {{ n_pages }}:
{% if page > 1 %}<a href="{{ L.page(kind, page - 1, args) }}" rel="prev">&larr; previous</a>{% endif %}
{% for p in range(1, n_pages + 1) %}{% if p == page %}<span><b>{{ p }}</b></span>{% elif p <= 3 or p > n_pages - 2 or (p - page)|abs <= 2 %}<a href="{{ L.page(kind, p, args) }}">{{ p }}</a>{% elif p == 4 or p == n_pages - 2 %}<span>…</span>{% endif %}{% endfor %}
{% if page < n_pages %}<a href="{{ L.page(kind, page + 1, args) }}" rel="next">next &rarr;</a>{% endif %}
</div>{% endif %}
{%- endmacro %}

{% macro rare_card(L, c, rank=None) -%}
<div class="card rare" data-clip="{{ c.clip_id }}">
<div class="row"><div class="strip">{{ strip(L, c, 90) }}</div>
<div style="flex:1;min-width:280px">
<div>{% if rank %}<b>#{{ rank }}</b> {% endif %}{{ clip_link(L, c) }} {{ meta(c) }}</div>
{% if c.why %}<div class="why"><b>why:</b> {{ c.why.reason }}
<span class="muted">(ranked by {{ c.why.basis }}; density score {{ c.why.score }}{% if c.why.dynamics %}, dynamics score {{ c.why.dynamics }}{% endif %}; rarity percentile {{ c.why.percentile }}{% if c.why.copies %}; {{ c.why.copies }} more cop{{ 'y' if c.why.copies == 1 else 'ies' }} of it in the region{% endif %})</span></div>
<div>{% for x in c.why.conditions %}<span class="tag cond">condition: {{ x|replace('_', ' ') }}</span>{% endfor %}{% for x in c.why.events %}<span class="tag ev">event: {{ x|replace('_', ' ') }}</span>{% endfor %}</div>{% endif %}
{% if c.trigger_detail %}<div class="muted">triggers: {% for t in c.trigger_detail %}{{ t.name|replace('_', ' ') }} {{ t.span }}{% if t.value %} ({{ t.value }}){% endif %}{% if not loop.last %}; {% endif %}{% endfor %}</div>{% endif %}
</div></div>
{% if c.neighbours %}<div class="muted" style="margin-top:6px">nearest clips from other recordings:</div>
<div class="near neighbours">{% for n in c.neighbours %}<div class="card">{{ strip(L, n, 45) }}{{ clip_link(L, n) }}
<div class="muted">{% if n.score %}similarity {{ n.score }}{% endif %}{% if n.relation %} · {{ n.relation }}{% endif %}{% if n.span %} · matches {{ n.span }}{% endif %}{% if n.drive %} · drive {{ n.drive }}{% endif %}</div></div>{% endfor %}</div>{% endif %}
</div>
{%- endmacro %}

{% macro selection_view(L, sel) -%}
<p>{{ sel.count }} clips chosen ({{ sel.source }}){% if sel.missing %}; {{ sel.missing }} no longer in the region{% endif %}.</p>
<table class="t"><tr><th>share</th><th>clips</th><th>of the selection</th></tr>
{% for k, v, pct in sel.shares %}<tr><td>{{ k }}</td><td>{{ v }}</td><td>{{ pct }}</td></tr>{% endfor %}</table>
{% if sel.splits %}<p class="muted">splits: {% for k, v in sel.splits %}{{ k or '?' }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}{% if sel.quotas %}; quotas: {% for k, v in sel.quotas %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}{% endif %}</p>{% endif %}
<h3>The first {{ sel.shown }} chosen, and why</h3>
<div class="gallery selection">{% for c in sel.chosen %}<div class="card" data-clip="{{ c.clip_id }}"><div class="row"><div class="strip">{{ strip(L, c, 56) }}</div>
<div>{{ clip_link(L, c) }} <span class="tag">{{ c.reason }}</span> <span class="muted">{{ c.split }}</span>
<div class="muted">{{ c.why_chosen }}</div><div>{{ tags(c.triggers) }}</div>{{ meta(c) }}</div></div></div>{% endfor %}</div>
{%- endmacro %}
"""

_OVERVIEW = """{% extends "base.html" %}{% from "macros.html" import rare_card %}{% block body %}
{% if s %}<h2>Region summary</h2>
<div class="kv summary">
<div><b>{{ "{:,}".format(s.clips) }}</b>clips</div>
<div><b>{{ "{:,}".format(s.recordings) }}</b>recordings</div>
<div><b>{{ "{:,}".format(s.drives) }}</b>drives</div>
<div><b>{{ s.hours }}</b>hours</div>
{% if s.redundant is not none %}<div><b>{{ "{:,}".format(s.redundant) }}</b>duplicates removed ({{ s.groups }} groups)</div>
<div><b>{{ "{:,}".format(s.partials) }}</b>partial overlaps</div>{% endif %}
<div><b>{{ s.storage }}</b>storage</div>
<div><b>{{ "{:,}".format(s.triggered) }}</b>clips with a trigger</div>
</div>
{% if s.time_range %}<p class="muted">recorded {{ s.time_range }}</p>{% endif %}
{% if s.jobs %}<h3>Last jobs</h3><table class="t jobs"><tr><th>job</th><th>status</th><th>started</th><th>took</th><th></th></tr>
{% for j in s.jobs %}<tr><td>{{ j.kind }}</td><td>{{ j.status }}</td><td>{{ j.started }}</td><td>{{ j.took }}</td><td>{{ j.what }}</td></tr>{% endfor %}</table>{% endif %}
{% endif %}
{% if plots %}<h2>Plots</h2><div class="plots">{% for key, title, href in plots %}<figure><img src="{{ href }}" alt="{{ title }}"><figcaption class="muted">{{ title }}</figcaption></figure>{% endfor %}</div>{% endif %}
<h2>Views</h2><ul>
{% for key, label, href, note in views %}<li><a href="{{ href }}">{{ label }}</a> <span class="muted">{{ note }}</span></li>{% endfor %}
</ul>
{% endblock %}"""

_RARE = """{% extends "base.html" %}{% from "macros.html" import rare_card, pager %}{% block body %}
<h2>Rarest recordings</h2>
<p class="muted">One card per recording (a duplicate group once, its representative), rarest first: why it ranks rare, its triggers, and its nearest clips from other recordings.</p>
<div class="gallery" id="rare-gallery">{% for c in cards %}{{ rare_card(L, c, first + loop.index0) }}{% endfor %}</div>
{% if not cards %}<p>No rarity ranking to show.</p>{% endif %}
{{ pager(L, 'rare', page, n_pages) }}
{% endblock %}"""

_DUPS = """{% extends "base.html" %}{% from "macros.html" import timeline, pager %}{% block body %}
<h2>Duplicate groups</h2>
<p class="muted">Each group as aligned keyframe strips: the representative first, each copy shifted by its offset to it, so frames of the same moment stand one above the other. Largest groups first.</p>
<div id="duplicate-strips">{% for g in groups %}<div class="group dup" data-rep="{{ g.rep_id }}"><b>group of {{ g.size }}</b> <span class="muted">representative {{ g.rep_id }}{% if g.hidden %}; {{ g.hidden }} more copies not drawn{% endif %}</span>
{{ timeline(L, g.timeline) }}</div>{% endfor %}</div>
{% if not groups %}<p>No duplicate groups.</p>{% endif %}
{{ pager(L, 'duplicates', page, n_pages) }}
{% endblock %}"""

_PARTIALS = """{% extends "base.html" %}{% from "macros.html" import timeline, pager %}{% block body %}
<h2>Partial overlaps</h2>
<p class="muted">Two clips that share part of their footage, on one time axis (the first clip's); the shared span is marked in both.</p>
<div id="partial-strips">{% for p in parts %}<div class="group partial"><b>{{ p.shared_s }} s shared</b> <span class="muted">offset {{ p.offset }} s, {{ p.matches }} matching keyframes</span>
{{ timeline(L, p.timeline) }}</div>{% endfor %}</div>
{% if not parts %}<p>No partial overlaps.</p>{% endif %}
{{ pager(L, 'partials', page, n_pages) }}
{% endblock %}"""

_SELECTION = """{% extends "base.html" %}{% from "macros.html" import selection_view %}{% block body %}
<h2>{{ sel_title }}</h2>
{% if form %}<form class="filters" method="get" action="{{ form.action }}">
<label>budget <input name="budget" type="number" min="1" value="{{ form.budget }}"></label>
<label>mix <input name="mix" value="{{ form.mix }}" size="32"></label>
<label>seed <input name="seed" type="number" value="{{ form.seed }}"></label>
<button type="submit">preview selection</button></form>
<p class="muted">A preview: nothing is written. <code>clipdex select --region {{ region }} --budget {{ form.budget }} --mix {{ form.mix }} --out FILE</code> writes the manifest.</p>{% endif %}
{% if error %}<p class="policy">{{ error }}</p>{% endif %}
{% if sel %}{{ selection_view(L, sel) }}{% elif not form %}<p>No manifest in this region yet: <code>clipdex select --region {{ region }} --budget N --out {{ region_path }}/manifests/train.jsonl</code> writes one.</p>{% endif %}
{% if map_href %}<h3>The selection on the embedding map</h3><div class="plots"><figure><img src="{{ map_href }}" alt="selection on the embedding map"></figure></div>{% endif %}
{% endblock %}"""

_CLIPS = """{% extends "base.html" %}{% from "macros.html" import strip, clip_link, tags, meta, pager %}{% block body %}
<h2>Clips</h2>
<form class="filters" method="get" action="{{ action }}">
<label>trigger <select name="trigger"><option value="">any</option>{% for n, c in trigger_names %}<option value="{{ n }}"{% if n == f.trigger %} selected{% endif %}>{{ n }} ({{ c }})</option>{% endfor %}</select></label>
<label>drive <select name="drive"><option value="">any</option>{% for n, c in drives %}<option value="{{ n }}"{% if n == f.drive %} selected{% endif %}>{{ n }} ({{ c }})</option>{% endfor %}</select></label>
<label>recorded after <input name="after" value="{{ f.after or '' }}" placeholder="2024-05-01"></label>
<label>before <input name="before" value="{{ f.before or '' }}" placeholder="2024-06-01T12:00"></label>
<button type="submit">filter</button></form>
{% if error %}<p class="policy">{{ error }}</p>{% endif %}
<p class="muted">{{ "{:,}".format(total) }} clips match.</p>
<div class="gallery" id="clip-list">{% for c in cards %}<div class="card" data-clip="{{ c.clip_id }}"><div class="row"><div class="strip">{{ strip(L, c, 56) }}</div><div>{{ clip_link(L, c) }} {{ meta(c) }}<div>{{ tags(c.triggers) }}</div></div></div></div>{% endfor %}</div>
{{ pager(L, 'clips', page, n_pages, args) }}
{% endblock %}"""

_CLIP = """{% extends "base.html" %}{% from "macros.html" import strip, clip_link, tags, meta %}{% block body %}
<h2 id="clip" data-clip="{{ c.clip_id }}">{{ c.clip_id }}</h2>
{% if c.has_preview %}<div class="row keyframes">{% for t in c.frame_times %}<figure style="margin:0"><div style="width:192px;height:108px;overflow:hidden;border-radius:3px"><img src="{{ L.img(c.row) }}" style="height:108px;width:{{ c.cells * 192 }}px;max-width:none;margin-left:-{{ loop.index0 * 192 }}px" alt="keyframe at {{ t }}"></div><figcaption class="muted">{{ t }}</figcaption></figure>{% endfor %}</div>{% endif %}
<table class="t meta"><tr><th>drive</th><td>{{ c.drive }}</td></tr><tr><th>vehicle</th><td>{{ c.vehicle }}</td></tr>
<tr><th>recording</th><td>{{ c.recording }} (from {{ c.offset }})</td></tr><tr><th>camera</th><td>{{ c.camera }}</td></tr>
<tr><th>recorded start</th><td>{{ c.start or 'unknown' }}</td></tr><tr><th>duration</th><td>{{ c.duration }} ({{ c.keyframes }} keyframes)</td></tr>
{% if c.source %}<tr><th>source</th><td>{{ c.source }}</td></tr>{% endif %}</table>
<h3>Triggers</h3>{% if c.trigger_detail %}<table class="t triggers"><tr><th>trigger</th><th>span</th>{% if c.trigger_detail[0].value is defined %}<th>value</th>{% endif %}</tr>
{% for t in c.trigger_detail %}<tr><td>{{ t.name }}</td><td>{{ t.span }}</td>{% if t.value is defined %}<td>{{ t.value }}</td>{% endif %}</tr>{% endfor %}</table>{% else %}<p class="muted">none</p>{% endif %}
{% if c.why %}<h3>Rarity</h3><p class="why">{{ c.why.reason }} <span class="muted">(ranked by {{ c.why.basis }}; percentile {{ c.why.percentile }})</span></p>{% endif %}
{% if c.group is defined or c.relations %}<h3>Relations</h3>
{% if c.group %}<p>In a duplicate group of {{ c.group.size }}; representative {{ c.group.rep_id }}.</p>{% endif %}
<div class="near relations">{% for r in c.relations %}<div class="card">{{ strip(L, r, 45) }}{{ clip_link(L, r) }}<div class="muted">{{ r.relation }}, offset {{ r.offset }}, shared {{ r.shared }}</div></div>{% endfor %}</div>{% endif %}
<h3>More like this</h3><p class="muted">The nearest clips from other recordings.</p>
<div class="near" id="neighbours">{% for n in c.neighbours %}<div class="card neighbour">{{ strip(L, n, 56) }}{{ clip_link(L, n) }}
<div class="muted">{% if n.score %}similarity {{ n.score }}{% endif %}{% if n.relation %} · {{ n.relation }}{% endif %}{% if n.span %} · matches {{ n.span }}{% endif %}</div></div>{% endfor %}</div>
{% if not c.neighbours %}<p class="muted">none</p>{% endif %}
{% endblock %}"""

_INDEX = """{% extends "base.html" %}{% block body %}
<h2>Regions</h2>
<table class="t regions"><tr><th>region</th><th>jurisdiction</th><th>shown here (what its policy lets leave it)</th></tr>
{% for r in regions %}<tr><td><a href="{{ r.href }}">{{ r.name }}</a></td><td>{{ r.jurisdiction }}</td><td>{{ r.fields|join(', ') or 'nothing' }}</td></tr>{% endfor %}</table>
{% endblock %}"""

_ENV = Environment(
    loader=DictLoader({"base.html": _BASE, "macros.html": _MACROS, "overview.html": _OVERVIEW,
                       "rare.html": _RARE, "duplicates.html": _DUPS, "partials.html": _PARTIALS,
                       "selection.html": _SELECTION, "clips.html": _CLIPS, "clip.html": _CLIP,
                       "index.html": _INDEX}),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True, lstrip_blocks=True,
)
_ENV.globals["CW"] = CELL_W


def render(template: str, **ctx) -> str:
    ctx.setdefault("css", _CSS)
    ctx.setdefault("policy_note", "")
    return _ENV.get_template(template).render(**ctx)
