"""Sovereignty under attack: each numbered attack of the sovereignty issue, run against a home of
three regions, asserting that nothing leaves a region except through the egress gate (with its
audit line written before any byte), nothing lands in another region's folder, and nothing of a
forgotten clip survives ``compact``.

Regions: ``us-west`` (ids, scores, hashes, relations to any region; a fleet of zarr clips),
``cn-east`` (hashes to us-west only; another fleet) and ``eu-central`` (frames and telemetry
to anywhere; small generated videos with telemetry sidecars).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from typer.testing import CliRunner

from engine.curation.export import export_manifest
from engine.curation.manifest import read_manifest, write_manifest
from engine.curation.select import select_clips
from engine.errors import PolicyError, RegionError, StoreError
from engine.ingest.pipeline import IngestOptions, ingest
from engine.sovereignty import audit
from engine.sovereignty.crossregion import cross_duplicates, export_hashes
from engine.sovereignty.forget import compact, forget
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore
from engine.surfaces.cli import app
from engine.surfaces.report import build_report
from tests.test_sources_helpers import write_video

runner = CliRunner()
A, B, C = "us-west", "cn-east", "eu-central"


def cli(*args: str) -> tuple[int, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.output


def _telemetry_csv(path: Path, seconds: float, marker: str = "") -> Path:
    t = np.arange(0, seconds, 0.1)
    lines = ["time,speed,accel,yaw_rate,steering"] + [f"{x:.2f},{10 + x:.2f},0.1,0.0,0.0" for x in t]
    if marker:
        lines.insert(1, marker)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from fixtures import FleetSpec, write_fleet

    root = tmp_path_factory.mktemp("redteam")
    fleet = root / "fleet"
    write_fleet(fleet, FleetSpec.tiny(seed=3))
    home = Home.open(root / "home", create=True)
    home.add_region(A, jurisdiction="US", export_fields=("ids", "scores", "hashes", "relations"),
                    export_to=("*",))
    home.add_region(B, jurisdiction="CN", export_fields=("hashes",), export_to=(A,))
    home.add_region(C, jurisdiction="EU", export_fields=("frames", "telemetry"), export_to=("*",))
    for r in (A, B):
        rep = ingest(home, r, [fleet / r / "clips.zarr"])
        assert rep.ok, rep.failed
    videos = root / "videos-eu"
    videos.mkdir()
    for i in range(3):
        v = write_video(videos / f"drive{i}.mp4", seconds=4.0, start=7.0 * i)
        _telemetry_csv(v.with_suffix(".csv"), 4.0)
    rep = ingest(home, C, [videos])
    assert rep.ok and len(rep.ingested) == 3, rep.failed
    return {"root": root, "home": home, "fleet": fleet, "videos": videos}


@pytest.fixture
def audit_first(monkeypatch):
    """Record, for every audit line, whether its destination already held a byte."""
    seen: list[tuple[dict, bool]] = []
    real = audit.record

    def spy(region, **kw):
        detail = kw.get("detail") or {}
        outs = [Path(o) for o in [detail.get("out"), *detail.get("beside", [])] if o]
        existed = any(o.exists() and (o.is_file() or any(o.iterdir())) for o in outs)
        entry = real(region, **kw)
        seen.append((entry, existed))
        return entry

    monkeypatch.setattr(audit, "record", spy)
    return seen


def _bytes_under(path: Path) -> list[tuple[Path, bytes]]:
    return [(Path(d) / f, (Path(d) / f).read_bytes()) for d, _, files in os.walk(path) for f in files]


def _clip_ids(home: Home, region: str) -> list[str]:
    with RegionStore.open(home.region(region)) as s:
        return list(s.clip_table().clip_ids)


# ---------------------------------------------------------------------------- attack 1
def test_attack1_report_and_select_cannot_write_into_another_region(world, audit_first):
    home = world["home"]
    b_catalog = home.region(B).path / "catalog.sqlite"
    before = b_catalog.read_bytes()
    with RegionStore.open(home.region(A)) as s:
        with pytest.raises(PolicyError, match="region 'cn-east'"):
            build_report(s, b_catalog, home=home)
        sel = select_clips(s, 5, seed=0)
    for target in (b_catalog, home.region(B).path / "manifests" / "m.jsonl", home.region(B).path / ".." / B / "x.csv"):
        with pytest.raises(PolicyError, match="region 'cn-east'"):
            write_manifest(sel, target, home=home)
    code, out = cli("report", "--region", A, "--home", str(home.path), "--out", str(b_catalog))
    assert code == 2 and "cn-east" in out
    assert b_catalog.read_bytes() == before
    with RegionStore.open(home.region(B)) as s:
        assert len(s.clip_table()) > 0  # B's catalog still opens
    assert not (home.region(B).path / "manifests").exists()
    assert not audit_first  # refused before any audit line: nothing was sent


def test_attack1_outside_writes_need_the_policy_and_are_audited_first(world, audit_first, tmp_path):
    home = world["home"]
    with RegionStore.open(home.region(A)) as s:
        # us-west grants no thumbnails: its report may not leave
        with pytest.raises(PolicyError, match="'thumbnails'"):
            build_report(s, tmp_path / "r.html", home=home)
        sel = select_clips(s, 5, seed=0)
    assert not (tmp_path / "r.html").exists()
    path = write_manifest(sel, tmp_path / "m.jsonl", home=home)  # ids and scores granted, sources not
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    assert rows and all("clip_id" in r for r in rows)
    assert all("source" not in r for r in rows)
    entry, existed = audit_first[-1]
    assert not existed and entry["operation"] == "manifest" and entry["to"] == "*"
    assert set(entry["fields"]) == {"ids", "scores"}
    with RegionStore.open(home.region(B)) as s:  # cn-east grants nothing to '*'
        sel_b = select_clips(s, 3, seed=0)
        with pytest.raises(PolicyError, match="'ids'"):
            write_manifest(sel_b, tmp_path / "b.jsonl", home=home)
    assert not (tmp_path / "b.jsonl").exists()


def test_attack1_manifest_without_a_home_stays_in_its_region(world, audit_first, tmp_path):
    import dataclasses

    from engine.sovereignty.egress import read_outputs

    home = world["home"]
    with RegionStore.open(home.region(A)) as s:
        sel = select_clips(s, 4, seed=0)
    own = home.region(A).path / "manifests" / "library.jsonl"
    assert write_manifest(sel, own) == own.resolve()
    assert {"path": str(own.resolve()), "kind": "manifest"} in read_outputs(home.region(A))
    config = (home.path / "regions.toml").read_bytes()
    for target in (tmp_path / "m.jsonl", home.region(B).path / "m.jsonl",
                   home.region(A).path / ".." / B / "m.jsonl", home.path / "regions.toml"):
        with pytest.raises(PolicyError, match="outside region 'us-west'"):
            write_manifest(sel, target)
        assert target.name == "regions.toml" or not target.exists()
    assert (home.path / "regions.toml").read_bytes() == config
    # a selection that does not name its region's folder (built by hand, or relabelled as
    # another region's) has no place to go without the home's policy
    for forged in (dataclasses.replace(sel, origin=None), dataclasses.replace(sel, region=B)):
        with pytest.raises(PolicyError, match="pass home="):
            write_manifest(forged, home.region(B).path / "forged.jsonl")
    assert not (home.region(B).path / "forged.jsonl").exists()
    assert not audit_first


def test_attack1_report_assets_beside_the_page_cannot_land_in_another_region(world, audit_first, tmp_path):
    """``--out x.html`` writes ``x_files/`` beside the page: a region whose folder is that very
    name must not receive the report (the gate checks every name the report writes)."""
    home = Home.open(tmp_path / "home", create=True)
    home.add_region("pub", export_fields=("ids", "thumbnails", "scores"), export_to=("*",))
    out = tmp_path / "shared"
    home.add_region("vault", path=out / "r_files")
    rep = ingest(home, "pub", [world["videos"]])
    assert rep.ok and rep.ingested, rep.failed
    vault = home.region("vault").path
    with RegionStore.open(home.region("pub")) as s:
        with pytest.raises(PolicyError, match="'vault'"):
            build_report(s, out / "r.html", home=home)
        assert not (out / "r.html").exists() and list(vault.iterdir()) == []
        assert not audit_first
        page = build_report(s, out / "other.html", home=home)  # beside no region: allowed, audited first
    assert page.exists() and audit_first and not audit_first[-1][1]
    assert list(vault.iterdir()) == []


# ---------------------------------------------------------------------------- attack 2
def _manifest(home: Home, region: str, name: str, budget: int = 3) -> Path:
    with RegionStore.open(home.region(region)) as s:
        sel = select_clips(s, budget, seed=0)
    return write_manifest(sel, home.region(region).path / "manifests" / name, home=home)


def test_attack2_export_carries_only_policy_fields_under_opaque_ids(world, audit_first, tmp_path):
    home = world["home"]
    manifest = _manifest(home, C, "ship.jsonl")
    records = read_manifest(manifest)
    out = tmp_path / "dataset"
    rep = export_manifest(home, manifest, out=out, frames="keyframes")
    assert rep.ok, rep.failed
    entry, existed = audit_first[-1]
    assert not existed, "a byte reached the destination before the audit line"
    assert entry["operation"] == "export" and set(entry["fields"]) == {"frames", "telemetry"}
    root = zarr.open_group(out, mode="r")
    names = sorted(root.group_keys())
    assert len(names) == len(records) and all(n.startswith("c-") for n in names)
    for name in names:
        attrs = dict(root[name].attrs)
        assert not {"clip_id", "source", "drive_id", "detail", "reason"} & set(attrs)
        assert "telemetry" in root[name].group_keys()
    secrets_ = [r["clip_id"] for r in records] + [r["source"] for r in records]
    secrets_ += [str(world["videos"]), "rarity", "percentile"]
    for path, data in _bytes_under(out):
        for s in secrets_:
            assert s.encode() not in data, f"{path} carries {s!r}"
    # a second export elsewhere: other opaque ids (unlinkable across exports)
    out2 = tmp_path / "dataset2"
    export_manifest(home, manifest, out=out2, frames="keyframes")
    assert not set(zarr.open_group(out2, mode="r").group_keys()) & set(names)


def test_attack2_blocked_audit_log_leaves_nothing_at_the_destination(world, tmp_path):
    home = world["home"]
    manifest = _manifest(home, C, "blocked.jsonl", budget=1)
    log = audit.audit_path(home.region(C))
    saved = log.read_bytes() if log.exists() else b""
    log.unlink(missing_ok=True)
    log.mkdir()  # the audit log cannot be appended to
    try:
        with pytest.raises(StoreError, match="audit log"):
            export_manifest(home, manifest, out=tmp_path / "blocked")
    finally:
        log.rmdir()
        log.write_bytes(saved)
    assert not (tmp_path / "blocked").exists()


# ---------------------------------------------------------------------------- attack 3
def test_attack3_crossdup_tokens_random_and_payload_hashes_only(world):
    home = world["home"]
    with RegionStore.open(home.region(B)) as s:
        ids = list(s.clip_table().clip_ids)
        p1, t1 = export_hashes(s)
        p2, t2 = export_hashes(s)
    assert set(p1) == {"hashes"}  # no counts, quality flags or ids
    assert not set(t1) & set(t2)  # fresh tokens every run
    assert sorted(t1.values()) == sorted(ids)
    for token, hashes in p1["hashes"].items():
        assert token not in ids and not token.isdigit()
        assert hashes.dtype == np.uint8 and hashes.ndim == 2
    assert all(t not in json.dumps(ids) for t in t1)


def test_attack3_crossdup_only_policy_fields_cross_both_ways(world):
    home = world["home"]
    n_b = len(audit.read(home.region(B)))
    n_a = len(audit.read(home.region(A)))
    # cn-east may send hashes to us-west, but us-west... sends relations back (granted): ok
    res = cross_duplicates(home, B, A)
    assert res.status == "ok"
    sent = audit.read(home.region(B))[n_b:]
    back = audit.read(home.region(A))[n_a:]
    assert [e["fields"] for e in sent] == [["hashes"]]
    assert back and set(back[-1]["fields"]) <= {"relations", "ids", "scores"} and "relations" in back[-1]["fields"]
    # us-west -> cn-east: cn-east grants no relations back to us-west: refused, nothing crosses
    n_a, n_b = len(audit.read(home.region(A))), len(audit.read(home.region(B)))
    res = cross_duplicates(home, A, B)
    assert res.status == "refused" and "'relations'" in res.reason and "cn-east" in res.reason
    assert len(audit.read(home.region(A))) == n_a and len(audit.read(home.region(B))) == n_b
    # eu-central grants no hashes to us-west: refused before anything is read
    res = cross_duplicates(home, C, A)
    assert res.status == "refused" and "'hashes'" in res.reason


# ---------------------------------------------------------------------------- attack 4
@pytest.mark.parametrize("how", ["nested", "dotdot", "symlink", "same"])
def test_attack4_hand_edited_regions_toml_with_overlapping_folders_refused(tmp_path, how):
    home = Home.open(tmp_path / "home", create=True)
    home.add_region("a-one", export_fields=("ids", "scores", "hashes"), export_to=("*",))
    home.add_region("b-two")
    b = home.region("b-two").path
    (b / "catalog.sqlite").write_bytes(b"b's data")
    if how == "nested":
        alias = str(b / "inner")
    elif how == "dotdot":
        alias = str(home.path / "regions" / "a-one" / ".." / "b-two")
    elif how == "same":
        alias = "regions/b-two"
    else:
        (tmp_path / "innocent").symlink_to(b)
        alias = str(tmp_path / "innocent")
    cfg = home.path / "regions.toml"
    cfg.write_text(cfg.read_text() + f'\n[regions.alias]\npath = "{alias}"\nexport_fields = ["ids", '
                   '"scores", "hashes"]\nexport_to = ["*"]\n')
    with pytest.raises(RegionError, match="'alias'.*'b-two'|'b-two'.*'alias'"):
        Home.open(home.path)
    code, out = cli("crossdup", "--from", "alias", "--to", "a-one", "--home", str(home.path))
    assert code == 2 and "share a folder" in out


# ---------------------------------------------------------------------------- attack 5
@pytest.fixture
def erasure_home(tmp_path):
    home = Home.open(tmp_path / "home", create=True)
    home.add_region(A, export_fields=("ids",), export_to=("*",))
    videos = tmp_path / "videos"
    videos.mkdir()
    paths = [write_video(videos / f"secret{i}.mp4", seconds=4.0, start=11.0 * i) for i in range(3)]
    rep = ingest(home, A, [videos])
    assert rep.ok and len(rep.ingested) == 3, rep.failed
    return home, videos, paths


def _outputs(home: Home) -> dict:
    """A report, a manifest and an export, all inside the region, naming every clip."""
    region = home.region(A)
    with RegionStore.open(region) as s:
        report = build_report(s, region.path / "report.html", home=home)
        sel = select_clips(s, 10, seed=0)
    manifest = write_manifest(sel, region.path / "manifests" / "all.jsonl", home=home)
    csv_manifest = write_manifest(sel, region.path / "picked.csv", home=home)
    rep = export_manifest(home, manifest, frames="keyframes")
    assert rep.ok, rep.failed
    return {"report": report, "manifest": manifest, "csv": csv_manifest, "export": Path(rep.out)}


def _assert_gone(home: Home, victim: str, source: str) -> None:
    for path, data in _bytes_under(home.region(A).path):
        i = data.find(victim.encode())
        assert i < 0, f"{path} still names {victim}: {data[max(0, i - 300):i + 80]!r}"
        assert source.encode() not in data, f"{path} still holds the source path {source}"


def test_attack5_forget_and_compact_leave_nothing_of_the_clip(erasure_home):
    home, videos, paths = erasure_home
    outs = _outputs(home)
    victim, source = "secret1", str(paths[1].resolve())
    rep = forget(RegionStore.open(home.region(A)), [victim])
    assert rep.forgotten == [victim]
    kinds = {t["kind"] for t in rep.touched}
    assert {"report", "manifest", "export"} <= kinds
    assert victim not in outs["report"].read_text() and victim not in outs["manifest"].read_text()
    assert victim not in outs["csv"].read_text()
    assert not (outs["export"] / victim).exists()
    with RegionStore.open(home.region(A)) as s:
        info = compact(s)
    assert info["scrubbed"] == 1
    _assert_gone(home, victim, source)
    # forget is idempotent even after the catalog lost the id
    again = forget(RegionStore.open(home.region(A)), [victim])
    assert again.already_erased == [victim] and not again.unknown
    # re-ingest refused whatever the split or the name
    for opts in (IngestOptions(), IngestOptions(clip_seconds=2.0)):
        rep = ingest(home, A, [videos], opts)
        assert not [c for c in rep.ingested if c.startswith(victim)], rep.ingested
        assert any(c == "(erased)" and "forgotten" in r for c, r in rep.skipped), rep.skipped
    renamed = videos.parent / "renamed"
    renamed.mkdir()
    os.link(paths[1], renamed / "holiday.mp4")
    rep = ingest(home, A, [renamed], IngestOptions(clip_seconds=1.5))
    assert not rep.ingested and rep.skipped
    _assert_gone(home, victim, source)


def _killed(home: Home, *args: str, fault: str) -> None:
    """Run ``clipdex ARGS`` in a process SIGKILLed at the fault point ``fault`` (stage:n)."""
    env = {**os.environ, "CLIPDEX_FAULT": fault}
    proc = subprocess.run([sys.executable, "-m", "engine.surfaces.cli", *args, "--region", A, "--home", str(home.path)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, (fault, proc.stdout, proc.stderr)


#: every step of forget (the output purge: after the 1st, 2nd and 4th output it touches) and of compact
KILL_POINTS = ["forget_recorded:1", "forget_tombstoned:1", "forget_thumbnails:1", "forget_regrouped:1",
               "forget_output:1", "forget_output:2", "forget_output:4", "compact_zeroed:1",
               "compact_scrubbed:1"]


@pytest.mark.parametrize("fault", KILL_POINTS)
def test_attack5_forget_killed_at_each_step_is_finished_by_a_rerun(erasure_home, fault):
    home, videos, paths = erasure_home
    outs = _outputs(home)
    victim = "secret2"
    with RegionStore.open(home.region(A)) as s:
        row = s.clip_row(victim)
    if fault.startswith("forget"):
        _killed(home, "forget", victim, fault=fault)
        rep = forget(RegionStore.open(home.region(A)), [victim])
        assert rep.forgotten == [victim] and not rep.unknown
    else:
        assert forget(RegionStore.open(home.region(A)), [victim]).forgotten == [victim]
        _killed(home, "compact", fault=fault)
    again = forget(RegionStore.open(home.region(A)), [victim])  # idempotent at every point
    assert not again.unknown and (again.forgotten or again.already_erased) == [victim]
    with RegionStore.open(home.region(A)) as s:
        assert not s.read_rows("thumbnails", row, row + 1).any()
        assert victim not in s.clip_table().clip_ids
    for name in ("manifest", "csv", "report"):
        assert victim not in outs[name].read_text(), name
    assert not (outs["export"] / victim).exists()
    with RegionStore.open(home.region(A)) as s:
        compact(s)
    _assert_gone(home, victim, str(paths[2].resolve()))


@pytest.mark.parametrize("kind", ["images", "zarr"])
def test_attack5_forgotten_image_folder_or_zarr_clip_refused_under_any_name_or_sampling(tmp_path, kind):
    import shutil

    home = Home.open(tmp_path / "home", create=True)
    home.add_region("own", jurisdiction="XX")
    if kind == "images":
        source = _image_folder(tmp_path / "src" / "victim-seq", n=8, seed=11)
    else:
        source = _zarr_clip_store(tmp_path / "src" / "victim.zarr", "victim-zc", seed=11)
    rep = ingest(home, "own", [source])
    assert rep.ok and len(rep.ingested) == 1, rep.failed
    victim = rep.ingested[0]
    with RegionStore.open(home.region("own")) as s:
        assert forget(s, [victim]).forgotten == [victim]
        compact(s)
    copy = tmp_path / "elsewhere" / ("holiday" if kind == "images" else "holiday.zarr")
    shutil.copytree(source, copy)
    if kind == "images":  # other names, another frame rate, split
        for i, f in enumerate(sorted(copy.iterdir())):
            f.rename(copy / f"frame_{100 - i}.png")
        attempts = [IngestOptions(image_fps=25.0), IngestOptions(image_fps=5.0, clip_seconds=0.3)]
    else:  # another clip id, another keyframe rate
        g = zarr.open_group(copy / "victim-zc", mode="r+")
        g.attrs["clip_id"] = "innocent"
        attempts = [IngestOptions(keyframe_hz=3.0), IngestOptions(keyframe_hz=2.0)]
    for opts in attempts:
        rep = ingest(home, "own", [copy], opts)
        assert not rep.ingested, (opts, rep.ingested)
        assert rep.skipped and all(c == "(erased)" for c, _ in rep.skipped), rep.skipped
    for path, data in _bytes_under(home.region("own").path):
        assert victim.encode() not in data and str(source).encode() not in data, path


# ---------------------------------------------------------------------------- attack 6
def test_attack6_links_out_of_the_source_tree_are_never_read(world, tmp_path):
    home = world["home"]
    secret = _telemetry_csv(tmp_path / "passwd.csv", 4.0, marker="root:x:0:0:SECRET-MARKER")
    tree = tmp_path / "tree"
    (tree / "cam").mkdir(parents=True)
    write_video(tree / "cam" / "linked.mp4", seconds=3.0, start=50.0)
    (tree / "cam" / "linked.csv").symlink_to(secret)  # sidecar leaving the tree
    from PIL import Image

    imgs = tree / "frames"
    imgs.mkdir()
    rng = np.random.default_rng(1)
    for i in range(6):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(imgs / f"{i:03d}.png")
    outside = tmp_path / "outside.png"
    Image.fromarray(np.full((48, 64, 3), 200, np.uint8)).save(outside)
    (imgs / "006.png").symlink_to(outside)  # an image leaving the tree
    before = _clip_ids(home, C)
    rep = ingest(home, C, [tree])
    failed = dict(rep.failed)
    assert not rep.ingested
    assert any("linked.csv" in why and "outside the source tree" in why for why in failed.values())
    assert any("006.png" in why and "outside the source tree" in why for why in failed.values())
    assert _clip_ids(home, C) == before
    for path, data in _bytes_under(home.region(C).path):
        assert b"SECRET-MARKER" not in data, path
    # the user may vouch for the links: --follow-links reads them (into a home of its own, so
    # the shared world's regions stay as the other attacks expect them)
    from engine.ingest.pipeline import IngestOptions
    from engine.sovereignty.regions import Home

    own = Home.open(tmp_path / "own-home", create=True)
    own.add_region("own", jurisdiction="XX")
    rep = ingest(own, "own", [tree], IngestOptions(follow_links=True))
    assert sorted(rep.ingested) == ["cam__linked", "frames"], rep.failed


def test_attack6_frame_indexes_and_zarr_entries_linking_out_are_never_read(tmp_path):
    home = Home.open(tmp_path / "home", create=True)
    home.add_region("own", jurisdiction="XX")
    tree = tmp_path / "tree"
    seq = _image_folder(tree / "seq", n=6)
    index = tmp_path / "elsewhere" / "index.csv"
    index.parent.mkdir()
    index.write_text("file,time\n" + "".join(f"{i:03d}.png,{i * 0.1:.1f}\n" for i in range(6))
                     + "SECRET-INDEX,0\n")
    (seq / "index.csv").symlink_to(index)  # the frame index leaves the tree
    other = _zarr_clip_store(tmp_path / "other-region" / "clips.zarr", "theirs", seed=5)
    zarr.open_group(other / "theirs", mode="r+").attrs["drive_id"] = "SECRET-DRIVE"
    store = _zarr_clip_store(tree / "clips.zarr", "mine", seed=6)
    (store / "theirs").symlink_to(other / "theirs")  # a clip group of another tree
    rep = ingest(home, "own", [tree])
    failed = dict(rep.failed)
    assert not rep.ingested, rep.ingested
    assert any("index.csv" in why and "outside the source tree" in why for why in failed.values()), failed
    assert any("theirs" in why and "outside the source tree" in why for why in failed.values()), failed
    for path, data in _bytes_under(home.region("own").path):
        assert b"SECRET-INDEX" not in data and b"SECRET-DRIVE" not in data, path
    assert _clip_ids(home, "own") == []
    # a link to a single chunk of another store is refused the same way
    chunk_tree = tmp_path / "tree2"
    own_store = _zarr_clip_store(chunk_tree / "c.zarr", "solo", seed=7)
    chunk = next(p for p in (own_store / "solo" / "frames").rglob("*") if p.is_file() and p.name != "zarr.json")
    chunk.unlink()
    chunk.symlink_to(next(p for p in (other / "theirs" / "frames").rglob("*")
                          if p.is_file() and p.name != "zarr.json"))
    rep = ingest(home, "own", [chunk_tree])
    assert not rep.ingested and "outside the source tree" in str(rep.failed), rep.failed
    rep = ingest(home, "own", [tree], IngestOptions(follow_links=True))  # the user vouches for them
    assert sorted(rep.ingested) == ["mine", "seq", "theirs"], rep.failed


# ---------------------------------------------------------------------------- attack 7
def test_attack7_relative_sources_are_stored_absolute_and_checked_at_export(world, tmp_path, monkeypatch):
    home = world["home"]
    work = tmp_path / "work"
    work.mkdir()
    write_video(work / "rel.mp4", seconds=3.0, start=90.0)
    monkeypatch.chdir(work)
    rep = ingest(home, C, ["rel.mp4"])
    assert rep.ok and rep.ingested == ["rel"], rep.failed
    with RegionStore.open(home.region(C)) as s:
        src = next(r["source"] for r in s.clip_records() if r["clip_id"] == "rel")
    assert src == str((work / "rel.mp4").resolve())
    with RegionStore.open(home.region(C)) as s:
        sel = select_clips(s, 1, force=["rel"], seed=0)
    manifest = write_manifest(sel, home.region(C).path / "manifests" / "rel.jsonl", home=home)
    # another directory with another file of that name: the stored absolute path is used
    other = tmp_path / "other"
    other.mkdir()
    write_video(other / "rel.mp4", seconds=3.0, start=5.0)
    monkeypatch.chdir(other)
    assert export_manifest(home, manifest, frames="keyframes", out=home.region(C).path / "exports" / "a").ok
    # the ingested file replaced by other content: refused, not exported under the clip's id
    os.replace(other / "rel.mp4", work / "rel.mp4")
    rep = export_manifest(home, manifest, frames="keyframes", out=home.region(C).path / "exports" / "b")
    assert rep.failed and "digest changed" in rep.failed[0][1]


def _image_folder(folder: Path, n: int = 8, seed: int = 0) -> Path:
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    return folder


def _zarr_clip_store(path: Path, name: str, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root = zarr.open_group(path, mode="w")
    g = root.create_group(name)
    frames = rng.integers(0, 255, (20, 48, 64, 3), dtype=np.uint8)
    g.create_array("frames", shape=frames.shape, dtype="uint8", chunks=(4, 48, 64, 3))[...] = frames
    g.create_array("frame_times", shape=(20,), dtype="float64")[...] = np.arange(20) / 10.0
    g.attrs.update({"clip_id": name, "fps": 10.0})
    return path


@pytest.mark.parametrize("kind", ["images", "zarr"])
def test_attack7_export_refuses_an_image_folder_or_zarr_clip_changed_since_ingest(tmp_path, kind):
    home = Home.open(tmp_path / "home", create=True)
    home.add_region("own", jurisdiction="XX")
    src = tmp_path / "src"
    if kind == "images":
        source = _image_folder(src / "seq")
        opts = IngestOptions(clip_seconds=0.4)  # pieces carry the folder digest as recording_id
    else:
        source = _zarr_clip_store(src / "clips.zarr", "zc-one")
        opts = IngestOptions(keyframe_hz=4.0)  # the digest depends on the keyframe rate
    rep = ingest(home, "own", [source], opts)
    assert rep.ok and rep.ingested, rep.failed
    with RegionStore.open(home.region("own")) as s:
        sel = select_clips(s, 10, seed=0)
    manifest = write_manifest(sel, home.region("own").path / "manifests" / "m.jsonl", home=home)
    first = export_manifest(home, manifest, frames="keyframes", out=home.region("own").path / "exports" / "a")
    assert first.ok and first.written, first.failed
    if kind == "images":  # one frame swapped for other pixels
        from PIL import Image

        Image.fromarray(np.zeros((48, 64, 3), np.uint8)).save(source / "003.png")
    else:  # one frame between keyframes rewritten
        g = zarr.open_group(source / "zc-one", mode="r+")
        g["frames"][5] = 0
    rep = export_manifest(home, manifest, frames="keyframes", out=home.region("own").path / "exports" / "b")
    assert not rep.written and len(rep.failed) == len(first.written), rep.failed
    assert all("digest changed" in why for _, why in rep.failed), rep.failed


# ---------------------------------------------------------------------------- the whole session
def test_every_file_of_the_session_lies_in_its_region_or_passed_the_gate(world):
    home = world["home"]
    region_dirs = {r: home.region(r).path for r in (A, B, C)}
    for d, _, files in os.walk(home.path):
        for f in files:
            p = Path(d) / f
            if p == home.path / "regions.toml":
                continue
            owner = [r for r, rp in region_dirs.items() if p.is_relative_to(rp)]
            assert len(owner) == 1, p
            data = p.read_bytes()
            for other in set(region_dirs) - set(owner):
                for cid in [c for c in _clip_ids(home, other) if len(c) >= 6][:20]:
                    assert cid.encode() not in data or cid.startswith(owner[0]), f"{p} holds {other}'s {cid}"
    for r in (A, B, C):
        for e in audit.read(home.region(r)):
            assert set(e["fields"]) <= set(home.region(r).export_fields), e
            assert e["to"] == "*" or e["to"] in home.regions


def _snapshot(root: Path) -> dict[Path, tuple[int, int]]:
    return {Path(d) / f: ((st := (Path(d) / f).stat()).st_mtime_ns, st.st_size)
            for d, _, files in os.walk(root) for f in files}


def _region_secrets(home: Home, region: str) -> set[str]:
    """What of a region must not be found elsewhere: clip ids, source paths, content digests."""
    with RegionStore.open(home.region(region)) as s:
        ids = list(s.clip_table().clip_ids)
        found = s.erasable(ids)
    return {v for c, info in found.items()
            for v in (c, info["source"], info["digest"], info["recording_id"]) if v}


def test_scripted_session_leaves_nothing_of_a_region_outside_it_but_through_the_gate(tmp_path, audit_first):
    """A whole multi-region session through the CLI, then every file it wrote: a region's clip
    ids, source paths and digests lie in its own folder, or under a destination of its audit log
    whose line was written before the first byte; refused commands leave nothing anywhere."""
    home, outside, src = tmp_path / "home", tmp_path / "outside", tmp_path / "sources"
    h = str(home)
    policies = {A: ("ids,scores,thumbnails,frames,telemetry,relations", "*"), B: ("hashes", A), C: ("", "")}
    for i, (r, (fields, to)) in enumerate(policies.items()):
        args = ["regions", "add", r, "--home", h, *(["--export", fields, "--to", to] if fields else [])]
        assert cli(*args)[0] == 0
        (src / r).mkdir(parents=True)
        for j in range(2):
            v = write_video(src / r / f"{r[:2]}cam-{j:04d}.mp4", seconds=3.0, start=31.0 * i + 9.0 * j)
            _telemetry_csv(v.with_suffix(".csv"), 3.0)
    before = _snapshot(tmp_path)
    ok, refused = [], []
    script = [
        *[step for r in policies for step in (
            ("ingest", str(src / r), "--region", r), ("dedup", "--region", r), ("rare", "--region", r))],
        ("report", "--region", A),
        ("report", "--region", A, "--out", str(outside / "a-report.html")),
        ("select", "--region", A, "--budget", "2", "--out", str(home / "regions" / A / "manifests" / "a.jsonl")),
        ("select", "--region", A, "--budget", "2", "--out", str(outside / "a.jsonl")),
        ("export", "--manifest", str(home / "regions" / A / "manifests" / "a.jsonl")),
        ("export", "--manifest", str(home / "regions" / A / "manifests" / "a.jsonl"), "--out",
         str(outside / "a-dataset")),
        ("crossdup", "--from", B, "--to", A),
        ("query", "--region", B, "--clip", f"{B[:2]}cam-0000", "--regions", "all"),
        ("select-regions", "--budgets", "all=1"),
        ("select", "--region", C, "--budget", "2", "--out", str(home / "regions" / C / "manifests" / "c.jsonl")),
    ]
    attacks = [
        ("report", "--region", B, "--out", str(outside / "b-report.html")),
        ("report", "--region", A, "--out", str(home / "regions" / B / "a.html")),
        ("select", "--region", C, "--budget", "2", "--out", str(outside / "c.jsonl")),
        ("select", "--region", A, "--budget", "2", "--out", str(home / "regions" / C / "a.jsonl")),
        ("export", "--manifest", str(home / "regions" / C / "manifests" / "c.jsonl"), "--out",
         str(outside / "c-dataset")),
        ("export", "--manifest", str(home / "regions" / A / "manifests" / "a.jsonl"), "--out",
         str(home / "regions" / B / "stolen")),
        ("crossdup", "--from", A, "--to", B),
        ("crossdup", "--from", C, "--to", A),
    ]
    for step in script:
        code, out = cli(*step, "--home", h)
        assert code == 0, (step, out)
        ok.append(step)
    for step in attacks:
        code, out = cli(*step, "--home", h)
        refused.append((step, code, out))
        assert code != 0 or "refused" in out, (step, out)
    hm = Home.open(home)
    secrets_ = {r: _region_secrets(hm, r) for r in policies}
    folders = {r: hm.region(r).path for r in policies}
    audited = {r: [Path(o) for e in audit.read(hm.region(r)) if "out" in e.get("detail", {})
                   for o in (e["detail"]["out"], *e["detail"].get("beside", []))] for r in policies}
    assert audited[A] and not audited[B] and not audited[C]
    assert all(not existed for _, existed in audit_first), "a destination held bytes before its audit line"
    written = [f for f, stamp in _snapshot(tmp_path).items() if before.get(f) != stamp]
    assert {x.name for x in outside.iterdir()} == {"a-report.html", "a-report_files", "a.jsonl", "a-dataset"}
    assert all(len(v) >= 6 for v in secrets_.values())  # 2 clips: ids, source paths, digests
    assert not (folders[B] / "a.html").exists() and not (folders[B] / "stolen").exists()
    for f in written:
        data = f.read_bytes()
        owner = next((r for r, d in folders.items() if f.is_relative_to(d)), None)
        gated = {r for r, outs in audited.items() for o in outs if f == o or f.is_relative_to(o)}
        if owner is None and f != home / "regions.toml":
            assert gated, f"{f} was written outside every region without passing the gate"
        for r, values in secrets_.items():
            if r == owner or r in gated:
                continue
            leaked = [v for v in values if v.encode() in data]
            assert not leaked, f"{f} holds {r}'s {leaked[:3]}"
    # erasure closes the session: nothing of the clip left in its region's folder
    victim = f"{A[:2]}cam-0001"
    source = str((src / A / f"{victim}.mp4").resolve())
    assert cli("forget", victim, "--region", A, "--home", h)[0] == 0
    assert cli("compact", "--region", A, "--home", h)[0] == 0
    for f, data in _bytes_under(folders[A]):
        assert victim.encode() not in data and source.encode() not in data, f


# ---------------------------------------------------------------------------- the code itself
#: calls that create, change or remove a file whatever their arguments
_ALWAYS_WRITES = {"write_text", "write_bytes", "touch", "mkdir", "makedirs", "savez", "savez_compressed",
                  "savetxt", "tofile", "copyfile", "copy2", "copytree", "move", "rmtree", "unlink",
                  "rmdir", "symlink_to", "hardlink_to", "write_table", "write_index", "to_parquet",
                  "to_csv", "mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryDirectory",
                  "create_group", "create_array", "create_dataset", "save", "savefig"}
#: calls that write when made on these modules (``os.remove``, not ``list.remove``)
_MODULE_WRITES = {"os": {"remove", "link", "symlink", "truncate", "mkfifo", "makedirs"},
                  "shutil": {"copy"}, "sqlite3": {"connect"}}
#: modules whose ``open(path, mode)`` takes the path first (a path object's ``open(mode)`` does not)
_OPENER_MODULES = {"io", "av", "Image", "zarr", "gzip", "bz2", "lzma", "tarfile", "zipfile", "codecs",
                   "fs"}  # fs: an fsspec filesystem, fs.open(path, mode)
#: zarr entry points that write unless opened with mode "r"
_MODED = {"open_group", "open_array", "open_consolidated", "create", "group", "array"}


def _mode(call) -> str | None:
    """The literal mode of an ``open``-like call ("" when absent, None when not a literal)."""
    import ast

    for kw in call.keywords:
        if kw.arg == "mode":
            return kw.value.value if isinstance(kw.value, ast.Constant) else None
    return ""


def _is_write(call) -> bool:
    import ast

    f = call.func
    base = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    if name is None:
        return False
    if name in ("open", "fdopen"):
        if base == "os":
            return True
        if base in ("RegionStore", "Home"):  # a region's store, the home: their modules are listed
            return False
        if isinstance(f, ast.Name) or base in _OPENER_MODULES:  # open(path, mode), av.open(path, mode)
            pos = call.args[1] if len(call.args) > 1 else None
        else:  # path.open(mode)
            pos = call.args[0] if call.args else None
        mode = _mode(call)
        if pos is not None and mode == "":
            mode = pos.value if isinstance(pos, ast.Constant) and isinstance(pos.value, str) else None
        return mode is None or any(c in mode for c in "wax+")
    if name in _MODED and base == "zarr":
        return _mode(call) != "r"
    if name in ("replace", "rename"):  # os.replace(a, b); Path.replace(dst); not str/dataclass replace
        return base == "os" or (isinstance(f, ast.Attribute) and len(call.args) == 1 and not call.keywords)
    if base in _MODULE_WRITES and name in _MODULE_WRITES[base]:
        return True
    return name in _ALWAYS_WRITES


def _write_sites(path: Path) -> list[tuple[str, int, str]]:
    """(enclosing function, line, call) of every file-writing call in ``path``."""
    import ast

    sites: list[tuple[str, int, str]] = []

    def walk(node, scope: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                walk(child, [*scope, child.name])
                continue
            if isinstance(child, ast.Call) and _is_write(child):
                sites.append((".".join(scope) or "<module>", child.lineno, ast.unparse(child)[:90]))
            walk(child, scope)

    walk(ast.parse(path.read_text(encoding="utf-8")), [])
    return sites


#: every function in engine/ that writes a file, and why that never carries a region's data
#: anywhere but its own folder or through the gate. A new writer fails the test below: send its
#: output through engine.sovereignty.egress.open_target (and list it under GATED), or list it here if it
#: writes only inside a region's folder (or only the home's configuration).
_WRITERS = {
    # inside the region's folder: paths are built from a Region or its RegionStore
    "engine/sovereignty/audit.py:record": "the region's audit log",
    "engine/sovereignty/egress.py:register_output": "the region's outputs registry",
    "engine/sovereignty/egress.py:region_secret": "the region's egress key",
    "engine/sovereignty/forget.py:purge_outputs": "outputs inside the region (region_outputs keeps only those)",
    "engine/sovereignty/forget.py:_rewrite_manifest": "manifests inside the region, via purge_outputs",
    "engine/index/__init__.py:_save": "FAISS files in the store's index folder",
    "engine/index/__init__.py:_sweep_temp_files": "temp files in the store's index folder",
    "engine/index/__init__.py:rebuild_indexes": "the store's index folder",
    "engine/index/__init__.py:drop_indexes": "the store's index folder",
    "engine/store/region.py:RegionStore.open": "the region's store folder",
    "engine/store/region.py:RegionStore._connect": "the region's catalog",
    "engine/store/region.py:RegionStore._acquire_lock": "the region's writer lock",
    "engine/store/arrays.py:FeatureArrays.features": "the region's features.zarr",
    "engine/store/arrays.py:FeatureArrays._add_later_arrays": "the region's features.zarr",
    "engine/store/region.py:RegionStore.import_space": "the region's features.zarr",
    # the home's configuration and the demo's synthetic fleet: no region data
    "engine/sovereignty/regions.py:Home.open": "creates the home and its regions.toml",
    "engine/sovereignty/regions.py:Home.add_region": "regions.toml and the new region's empty folder",
    "engine/sovereignty/regions.py:Home.set_policy": "regions.toml",
    "engine/sovereignty/regions.py:Home.save": "regions.toml",
    "engine/surfaces/demo.py:run_demo": "a temporary synthetic fleet",
    "engine/surfaces/demo.py:claim_regions": "the demo's own regions and its record in the home",
    "engine/surfaces/demo.py:_rename_fleet_regions": "the synthetic fleet's ground truth",
    "engine/sources/zarr_clips.py:set_clip_attrs": "attrs of the demo's synthetic clip store",
    # into memory buffers
    "engine/surfaces/report.py:_small_png": "a PNG in memory",
    "engine/surfaces/plots.py:_png": "a PNG in memory",
    "engine/ingest/features.py:preview_strip": "a JPEG in memory",
}
#: writers whose destination comes from engine.sovereignty.egress.open_target: entry function -> the
#: functions it calls with the gated target (only it may call them)
GATED = {
    "engine/surfaces/report.py:build_report": ("_write_pages", "_write_pages.write", "_Links.img"),
    "engine/curation/manifest.py:write_manifest": ("_write_records",),
    "engine/curation/export.py:export_manifest": ("_open_root", "_export_one"),
}


def test_nothing_writes_outside_a_region_except_through_the_gate():
    """Walk the syntax tree of every module in engine/: each call that writes a file is in a
    listed function (inside a region, or the home's configuration) or behind the egress gate,
    whose audit line comes first; nothing else audits or calls the gated writers."""
    import ast

    root = Path(__file__).resolve().parents[1]
    helpers = {f"{m.split(':')[0]}:{h}": m for m, hs in GATED.items() for h in hs}
    seen: set[str] = set()
    for path in sorted((root / "engine").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        for func, line, call in _write_sites(path):
            key = f"{rel}:{func}"
            seen.add(key)
            assert key in _WRITERS or key in GATED or key in helpers, (
                f"{rel}:{line} {func} writes a file ({call}): send it through engine.sovereignty.egress.open_target "
                "or, if it writes only inside a region's folder, list it in _WRITERS with the reason")
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        if rel != "engine/sovereignty/egress.py":
            assert "audit.record(" not in text, f"{rel} audits on its own: use engine.sovereignty.egress.send"
        for node in ast.walk(tree):  # gated writers are called only by their entry function
            if isinstance(node, ast.FunctionDef):
                for call in ast.walk(node):
                    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name):
                        owner = helpers.get(f"{rel}:{call.func.id}")
                        if owner is not None:
                            assert owner == f"{rel}:{node.name}", (
                                f"{rel}:{call.lineno} {node.name} calls the gated writer {call.func.id}")
    assert set(_WRITERS) <= seen, f"listed writers that write nothing: {set(_WRITERS) - seen}"
    for entry, called in GATED.items():  # the gate comes before any write in the entry function
        rel, name = entry.split(":")
        fn = next(n for n in ast.walk(ast.parse((root / rel).read_text(encoding="utf-8")))
                  if isinstance(n, ast.FunctionDef) and n.name == name)
        calls = [c for c in ast.walk(fn) if isinstance(c, ast.Call)]
        gate = [c.lineno for c in calls if ast.unparse(c.func) == "egress.open_target"]
        assert gate, f"{entry} writes without engine.sovereignty.egress.open_target"
        writes = [c.lineno for c in calls if _is_write(c)
                  or (isinstance(c.func, ast.Name) and c.func.id in called)]
        assert writes and min(gate) < min(writes), f"{entry} writes before passing the gate"
    for fn in ("cross_query", "cross_duplicates"):
        src = (root / "engine" / "sovereignty" / "crossregion.py").read_text(encoding="utf-8")
        node = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == fn)
        assert "egress.send(" in ast.unparse(node), fn


def test_the_code_walk_sees_every_kind_of_write(tmp_path):
    """The walk above flags each way of writing a file (so a new one cannot slip past it)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def a(p):\n    open(p, 'w')\n"
        "def b(p):\n    p.open('a')\n"
        "def c(p):\n    p.write_bytes(b'')\n"
        "def d(x):\n    np.save('f.npy', x)\n"
        "def e(p):\n    zarr.open_group(p, mode='a')\n"
        "def f(p):\n    sqlite3.connect(p)\n"
        "def g(p, q):\n    shutil.copy(p, q)\n"
        "def h(p, q):\n    os.replace(p, q)\n"
        "def i(p, q):\n    p.replace(q)\n"
        "def j(p, m):\n    open(p, m)\n"
        "def k(p):\n    fd = os.open(p, 0)\n"
        "def ok(p, s):\n    open(p)\n    p.open()\n    zarr.open_group(p, mode='r')\n"
        "    s.replace('a', 'b')\n    x.copy()\n    Image.open(p)\n"
    )
    assert [f for f, _, _ in _write_sites(sample)] == list("abcdefghijk")
