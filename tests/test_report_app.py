"""The curator's report (``clipdex report``) and the local app (``clipdex serve``): the pages,
the egress gate on both, erasure, and real-browser checks (Selenium + Debian's Chromium).

One small demo home is built once for the module (``run_demo``, 60 clips, two regions).
Browser tests skip, with the reason, when Chromium or its driver is not installed (``.ci/run``
installs both). Screenshots go to ``tests/artifacts/`` (or ``$CLIPDEX_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from engine.errors import InputError, PolicyError
from engine.sovereignty import audit
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.surfaces.demo import run_demo
from engine.surfaces.report import build_report

US, CN = "us-west", "cn-east"
ARTIFACTS = Path(os.environ.get("CLIPDEX_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    home = tmp_path_factory.mktemp("views") / "home"
    summary = run_demo(home, seed=7, n_clips=60)
    return {"home": Home.open(home), "summary": summary}


def _report_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------- report
def test_demo_writes_the_report_and_names_it(demo):
    path = Path(demo["summary"]["report"])
    assert path.name == "index.html" and path.is_file()
    assert path.parent == demo["home"].region(US).path / "report"
    from engine.surfaces.demo import next_steps

    assert any(str(path) in line for line in next_steps(demo["summary"]))


def test_report_pages_are_offline_and_complete(demo):
    folder = Path(demo["summary"]["report"]).parent
    names = {p.name for p in folder.iterdir()}
    assert {"index.html", "rare-1.html", "duplicates-1.html", "partials-1.html", "selection.html", "img"} <= names
    plots = {p.name for p in (folder / "img").glob("plot-*.png")}
    assert plots == {"plot-rarity.png", "plot-triggers.png", "plot-time.png", "plot-map.png"}
    for page in folder.glob("*.html"):
        html = page.read_text(encoding="utf-8")
        # nothing from anywhere: no remote URL in any src/href, no script at all
        assert not re.search(r'(src|href)="(https?:)?//', html), page
        assert "<script" not in html
        for src in re.findall(r'<img src="([^"]+)"', html):
            if not src.startswith("data:"):
                assert (folder / src).is_file(), (page.name, src)
    index = (folder / "index.html").read_text(encoding="utf-8")
    for word in ("clips", "recordings", "drives", "hours", "duplicates removed", "storage", "Last jobs"):
        assert word in index
    rare = (folder / "rare-1.html").read_text(encoding="utf-8")
    assert rare.count('class="card rare"') >= 10 and "why:" in rare and "nearest clips from other recordings" in rare
    dups = (folder / "duplicates-1.html").read_text(encoding="utf-8")
    assert 'class="group dup"' in dups and "representative" in dups and "offset" in dups
    parts = (folder / "partials-1.html").read_text(encoding="utf-8")
    assert 'class="mark"' in parts or "No partial overlaps" in parts
    sel = (folder / "selection.html").read_text(encoding="utf-8")
    assert "manifest demo.jsonl" in sel and "diverse" in sel
    # previews are legible: 192x108 cells, JPEG strips copied as stored
    from PIL import Image

    jpgs = sorted((folder / "img").glob("r*.jpg"))
    assert jpgs
    with Image.open(jpgs[0]) as im:
        assert im.height == 108 and im.width % 192 == 0
    assert sum(p.stat().st_size for p in _report_files(folder)) < 20_000_000


def test_report_as_a_file_and_refuses_a_foreign_folder(demo, tmp_path):
    region = demo["home"].region(US)
    with RegionStore.open(region) as s:
        page = build_report(s, region.path / "curated.html", top=5, max_groups=3, max_partials=3)
        assert page == region.path / "curated.html" and page.is_file()
        assert (region.path / "curated_files" / "rare-1.html").is_file()
        html = page.read_text(encoding="utf-8")
        assert 'href="curated_files/rare-1.html"' in html
        inner = (region.path / "curated_files" / "rare-1.html").read_text(encoding="utf-8")
        assert 'href="../curated.html"' in inner
        foreign = region.path / "notes"
        foreign.mkdir()
        (foreign / "mine.txt").write_text("keep me")
        with pytest.raises(InputError, match="not a clipdex report folder"):
            build_report(s, foreign)
        assert (foreign / "mine.txt").read_text() == "keep me"
    shutil.rmtree(region.path / "curated_files")
    (region.path / "curated.html").unlink()
    shutil.rmtree(foreign)


def test_report_outside_the_region_follows_the_policy(demo, tmp_path):
    home = demo["home"]
    with RegionStore.open(home.region(CN)) as s:  # cn-east keeps its pictures
        with pytest.raises(PolicyError, match="'thumbnails'"):
            build_report(s, tmp_path / "cn", home=home)
    assert not (tmp_path / "cn").exists()
    with RegionStore.open(home.region(US)) as s:
        sources = set(s.clip_table().sources)
        page = build_report(s, tmp_path / "us", home=home, top=5)
    html = "".join(p.read_text(encoding="utf-8") for p in (tmp_path / "us").glob("*.html"))
    assert "Written outside the region" in html
    assert not any(src in html for src in sources)  # source_paths not granted
    entries = [e for e in audit.read(home.region(US)) if e["operation"] == "report"]
    assert entries and "source_paths" not in entries[-1]["fields"]
    assert page.is_file()


def test_forget_regenerates_the_report_without_the_clip(demo, tmp_path):
    # a home of its own: forgetting must not change the module's demo
    home_dir = tmp_path / "home"
    shutil.copytree(demo["home"].path, home_dir, symlinks=True)
    (home_dir / "regions.toml").write_text(
        (demo["home"].path / "regions.toml").read_text().replace(str(demo["home"].path), str(home_dir)))
    home = Home.open(home_dir)
    region = home.region(US)
    folder = region.path / "report"
    rare = (folder / "rare-1.html").read_text(encoding="utf-8")
    victim = re.search(r'<span class="id">(us-west-\d+)</span>', rare).group(1)
    from engine.sovereignty.forget import forget

    with RegionStore.open(region) as s:
        victim_row = s.clip_row(victim)
        assert s.previews([victim_row])[0][0] is not None
        rep = forget(s, [victim])
    assert any(t["kind"] == "report" and t["path"] == str(folder) for t in rep.touched), rep.touched
    for p in _report_files(folder):
        assert victim.encode() not in p.read_bytes(), p
    with RegionStore.open(region) as s:  # its pictures are erased at once, not at compaction
        assert s.previews([victim_row])[0][0] is None


def test_old_store_without_previews_still_reports(home, tmp_path):
    from tests.conftest import make_new_clip

    rng = np.random.default_rng(0)
    region = home.region("us-west")
    with RegionStore.open(region, create=True) as s, s.writer("t"):
        s.append_clips([make_new_clip(rng, f"c{i}") for i in range(6)], "t")
    with RegionStore.open(region) as s:
        assert [j for j, _ in s.previews([0, 3, 3])] == [None, None, None]
        page = build_report(s, region.path / "report", top=3)
    assert "no keyframe preview" in (page.parent / "rare-1.html").read_text(encoding="utf-8")


def test_previews_are_stored_at_ingest(demo):
    with RegionStore.open(demo["home"].region(US)) as s:
        rows = s.clip_table().rows[:3]
        got = s.previews(rows)
    import io

    from PIL import Image

    for jpeg, times in got:
        assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
        n = int(np.isfinite(times).sum())
        assert 1 <= n <= 4 and np.all(np.diff(times[:n]) > 0)
        with Image.open(io.BytesIO(jpeg)) as im:
            assert im.size == (192 * n, 108)


# ---------------------------------------------------------------------------- app
def _restricted(home: Home) -> Home:
    """The demo home with cn-east's policy narrowed to ids alone (in memory)."""
    regions = dict(home.regions)
    regions[CN] = dataclasses.replace(regions[CN], export_fields=("ids",), export_to=("*",))
    return Home(home.path, regions)


def test_app_shows_each_region_only_what_its_policy_lets_leave(demo):
    from engine.surfaces.app import create_app

    home = _restricted(demo["home"])
    app = create_app(home, [US, CN])
    client = app.test_client()
    with RegionStore.open(home.region(CN)) as s:
        table = s.clip_table()
        sources = set(table.sources)
        ids = list(table.clip_ids)
        from engine.scenes.rarity import load_rarity

        rar = load_rarity(s)
    # every page a browser can reach for cn-east
    urls = ["/", f"/r/{CN}/", f"/r/{CN}/clips", f"/r/{CN}/selection", f"/r/{CN}/selection?budget=8"]
    html = client.get(f"/r/{CN}/clips").get_data(as_text=True)
    n_pages = max([int(x) for x in re.findall(r"page=(\d+)", html)] or [1])
    urls += [f"/r/{CN}/clips?page={p}" for p in range(1, n_pages + 1)]
    urls += [f"/r/{CN}/clip/{cid}" for cid in ids]
    kept_words = ("similarity", "density score", "percentile", "duplicate group", "offset", "representative",
                  "Rarity", "<img", "/preview/", "/plot/", "storage", "hours")
    for url in urls:
        res = client.get(url)
        assert res.status_code == 200, url
        page = res.get_data(as_text=True)
        section = page if url != "/" else page.split(f'href="/r/{CN}/"')[0]
        for word in kept_words:
            if url == "/" and word in ("<img",):
                continue
            assert word not in section or url == "/", (url, word)
        assert not any(src in page for src in sources), url
        if "/clip/" in url:
            row = int(table.rows[ids.index(url.rsplit("/", 1)[1])])
            score = rar.get(row)
            if score is not None:
                assert f"{score[0]:.3f}" not in page, (url, row)
    # the routes of fields it keeps do not exist for it
    for url in [f"/r/{CN}/rare", f"/r/{CN}/duplicates", f"/r/{CN}/partials", f"/r/{CN}/plot/map.png",
                f"/r/{CN}/plot/triggers.png", *(f"/r/{CN}/preview/{r}.jpg" for r in table.rows[:10])]:
        assert client.get(url).status_code == 404, url
    # ... while us-west, whose policy lets them go, shows them
    rare = client.get(f"/r/{US}/rare").get_data(as_text=True)
    assert "density score" in rare and f"/r/{US}/preview/" in rare
    dups = client.get(f"/r/{US}/duplicates").get_data(as_text=True)
    assert 'class="group dup"' in dups
    img = re.search(rf'src="(/r/{US}/preview/\d+\.jpg)"', rare).group(1)
    res = client.get(img)
    assert res.status_code == 200 and res.mimetype == "image/jpeg" and res.data[:2] == b"\xff\xd8"
    assert client.get(f"/r/{US}/plot/map.png").mimetype == "image/png"
    # serving was audited once per region, with the fields that may be shown
    served = [e for e in audit.read(home.region(CN)) if e["operation"] == "serve"]
    assert served and served[-1]["fields"] == ["ids"] and served[-1]["to"] == "*"


def test_app_clip_page_filters_and_selection_preview(demo):
    from engine.surfaces.app import create_app

    app = create_app(demo["home"], [US])
    client = app.test_client()
    with RegionStore.open(demo["home"].region(US)) as s:
        table = s.clip_table()
        trig = sorted({name for _, name, *_ in s.triggers()})
    cid = table.clip_ids[0]
    page = client.get(f"/r/{US}/clip/{cid}").get_data(as_text=True)
    assert 'id="neighbours"' in page and page.count('class="card neighbour"') >= 1
    assert "Triggers" in page and "recorded start" in page
    assert client.get(f"/r/{US}/clip/no-such-clip").status_code == 404
    if trig:
        listed = client.get(f"/r/{US}/clips?trigger={trig[0]}").get_data(as_text=True)
        n = int(re.search(r"([\d,]+) clips match", listed).group(1).replace(",", ""))
        assert 1 <= n < len(table)
    drive = next(d for d in table.drive_ids if d)
    listed = client.get(f"/r/{US}/clips?drive={drive}").get_data(as_text=True)
    assert int(re.search(r"([\d,]+) clips match", listed).group(1)) == table.drive_ids.count(drive)
    none = client.get(f"/r/{US}/clips?after=2100-01-01").get_data(as_text=True)
    assert "0 clips match" in none
    bad = client.get(f"/r/{US}/clips?after=yesterday").get_data(as_text=True)
    assert "neither epoch seconds nor an ISO date" in bad
    sel = client.get(f"/r/{US}/selection?budget=6&mix=rare=0.5,diverse=0.5").get_data(as_text=True)
    assert "6 clips chosen" in sel and "a preview, not written" in sel
    before = sorted(p.name for p in (demo["home"].region(US).path / "manifests").iterdir())
    assert before == ["demo.jsonl"]  # the preview wrote nothing


def test_serve_cli_refuses_an_unknown_region(demo):
    from typer.testing import CliRunner

    from engine.surfaces.cli import app

    res = CliRunner().invoke(app, ["serve", "--region", "nowhere", "--home", str(demo["home"].path)])
    assert res.exit_code == 2 and "unknown region" in res.output


# ---------------------------------------------------------------------------- browser
def _browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install '.[test]')")
    binary = next((p for p in (shutil.which("chromium"), "/usr/bin/chromium", shutil.which("chromium-browser"))
                   if p and Path(p).exists()), None)
    driver = next((p for p in (shutil.which("chromedriver"), "/usr/bin/chromedriver") if p and Path(p).exists()),
                  None)
    if binary is None or driver is None:
        pytest.skip("no browser: Debian's chromium and chromium-driver are not installed "
                    "(apt-get install -y chromium chromium-driver; .ci/run does)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", "--allow-file-access-from-files"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


@pytest.fixture(scope="module")
def browser():
    d = _browser()
    d.set_page_load_timeout(60)
    yield d
    d.quit()


def _check_page(d, name: str) -> None:
    """No console error, every image loaded; a full-page screenshot saved."""
    import time

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not d.execute_script(
            "return document.readyState === 'complete' && Array.from(document.images).every(i => i.complete)"):
        time.sleep(0.1)
    errors = [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert not errors, errors
    broken = d.execute_script("return Array.from(document.images).filter(i => !(i.naturalWidth > 0))"
                              ".map(i => i.getAttribute('src').slice(0, 120))")
    assert not broken, broken
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = d.execute_script("return document.body.scrollHeight")
    d.set_window_size(1400, min(max(800, height + 40), 8000))
    d.save_screenshot(str(ARTIFACTS / f"{name}.png"))
    d.set_window_size(1400, 1000)


def test_browser_report(demo, browser):
    from selenium.webdriver.common.by import By

    folder = Path(demo["summary"]["report"]).parent
    d = browser
    d.get((folder / "index.html").as_uri())
    _check_page(d, "report-overview")
    assert len(d.find_elements(By.CSS_SELECTOR, ".plots img")) == 4
    assert len(d.find_elements(By.CSS_SELECTOR, ".summary div")) >= 6
    d.find_element(By.LINK_TEXT, "Rarest recordings").click()
    _check_page(d, "report-rare")
    cards = d.find_elements(By.CSS_SELECTOR, "#rare-gallery .card.rare")
    assert len(cards) >= 10
    assert all(c.find_elements(By.CSS_SELECTOR, ".strip img") for c in cards)
    assert d.execute_script("return Array.from(document.querySelectorAll('#rare-gallery .strip img'))"
                            ".every(i => i.naturalWidth > 0)")
    d.get((folder / "duplicates-1.html").as_uri())
    _check_page(d, "report-duplicates")
    groups = d.find_elements(By.CSS_SELECTOR, "#duplicate-strips .dup")
    assert groups
    first = groups[0].find_elements(By.CSS_SELECTOR, ".track")
    assert len(first) >= 2 and first[0].find_elements(By.CSS_SELECTOR, ".cell img")
    # aligned: whole copies' frames of one moment stand one above the other (same x)
    lefts = [[c.location["x"] for c in t.find_elements(By.CSS_SELECTOR, ".cell")] for t in first[:2]]
    assert lefts[0] and lefts[1]
    for page in ("partials-1.html", "selection.html"):
        d.get((folder / page).as_uri())
        _check_page(d, "report-" + page.split(".")[0].split("-")[0])


def test_browser_app_click_a_clip_shows_its_neighbours(demo, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    from werkzeug.serving import make_server

    from engine.surfaces.app import create_app

    app = create_app(demo["home"], [US, CN])
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    d = browser
    try:
        d.get(base + "/")
        _check_page(d, "app-regions")
        d.find_element(By.LINK_TEXT, US).click()
        _check_page(d, "app-overview")
        d.get(f"{base}/r/{US}/rare")
        _check_page(d, "app-rare")
        link = d.find_element(By.CSS_SELECTOR, "#rare-gallery .card.rare a.id")
        clip_id = link.text
        link.click()
        WebDriverWait(d, 30).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#neighbours .neighbour")))
        assert d.find_element(By.ID, "clip").text == clip_id
        _check_page(d, "app-clip")
        neighbours = d.find_elements(By.CSS_SELECTOR, "#neighbours .neighbour a.id")
        assert neighbours and all(n.text != clip_id for n in neighbours)
        assert d.find_elements(By.CSS_SELECTOR, ".keyframes img")
        d.get(f"{base}/r/{US}/duplicates")
        _check_page(d, "app-duplicates")
        assert d.find_elements(By.CSS_SELECTOR, "#duplicate-strips .dup .cell img")
        d.get(f"{base}/r/{CN}/")
        _check_page(d, "app-restricted-region")
        assert not d.find_elements(By.TAG_NAME, "img")  # cn-east keeps its pictures
    finally:
        server.shutdown()
        thread.join(timeout=10)


def test_artifacts_folder_is_ignored_by_git():
    root = Path(__file__).resolve().parents[1]
    text = (root / ".gitignore").read_text(encoding="utf-8") if (root / ".gitignore").exists() else ""
    assert "tests/artifacts" in text, json.dumps(text)
