"""The generated documentation matches its sources: docs/cli.md the Typer app, every figure
table the saved JSON it is rendered from."""

from __future__ import annotations

from pathlib import Path

from benchmarks import docs

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current():
    text = docs.render_cli()
    assert docs.CLI_DOC.read_text() == text, (
        "docs/cli.md is out of date: run `python -m benchmarks.docs cli`")


def test_cli_reference_lists_every_command():
    text = docs.CLI_DOC.read_text()
    for command in ("ingest", "dedup", "rare", "query", "select", "export", "verify", "forget",
                    "regions add", "clips set", "embeddings import"):
        assert f"## `clipdex {command}`" in text


def test_readme_is_short_and_links_into_docs():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for name in ("guide", "design", "quality", "performance", "cli", "sovereignty"):
        assert f"docs/{name}.md" in readme
    for link in ("guide", "design", "quality", "performance", "cli"):
        assert (ROOT / "docs" / f"{link}.md").exists()


def test_every_figure_table_matches_its_json():
    from benchmarks import figures

    stale = []
    for path in figures.documents():
        for name, body in figures.blocks(path.read_text()):
            if body != figures.render(name):
                stale.append(f"{path.relative_to(ROOT)}: {name}")
    assert not stale, ("figure tables differ from their saved JSON (run `python -m "
                       f"benchmarks.docs figures`): {stale}")


def test_figure_tables_name_known_figures_and_fit_80_columns():
    from benchmarks import figures

    found = set()
    for path in figures.documents():
        for name, _ in figures.blocks(path.read_text()):
            assert name in figures.FIGURES, f"{path.name}: unknown figure {name!r}"
            found.add(name)
            for line in figures.render(name).splitlines():
                assert len(line) <= 80, f"{name}: {line!r} is wider than 80 columns"
    assert "headline" in found


def test_figure_renders_from_json_and_changes_with_it(tmp_path, monkeypatch):
    """The generator reads the JSON: a changed figure in the JSON changes the table."""
    import json
    import shutil

    from benchmarks import figures

    shutil.copy(figures.RESULTS / "dask_scale.json", tmp_path / "dask_scale.json")
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    before = figures.render("dask")
    data = json.loads((tmp_path / "dask_scale.json").read_text())
    data["ratios"]["dask2_vs_local"] = 1.5
    (tmp_path / "dask_scale.json").write_text(json.dumps(data))
    assert "1.50x" in figures.render("dask") and figures.render("dask") != before
    text = "a\n<!-- figures:dask -->\nstale\n<!-- /figures -->\nb\n"
    assert figures.render_text(text) == ("a\n<!-- figures:dask -->\n" + figures.render("dask")
                                         + "<!-- /figures -->\nb\n")


def _anchors(text: str) -> set[str]:
    import re

    anchors = set()
    for heading in re.findall(r"^#+ (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        anchors.add(slug)
    return anchors


def test_links_between_documents_resolve():
    """Every relative link of README.md and docs/ names a file that exists, and its #anchor a
    heading of that file."""
    import re

    docs_dir = ROOT / "docs"
    broken = []
    for path in [ROOT / "README.md", *sorted(docs_dir.glob("*.md"))]:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if "://" in target or target.startswith("mailto:"):
                continue
            file_part, _, anchor = target.partition("#")
            dest = (path.parent / file_part).resolve() if file_part else path
            if not dest.exists():
                broken.append(f"{path.name}: {target}")
            elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest.read_text()):
                broken.append(f"{path.name}: {target} (no such heading)")
    assert not broken, broken


def test_dedup_scale_table_skips_the_growth_fit(tmp_path, monkeypatch):
    """dedup_scale's result ends with a growth fit over its sizes, which is not a run: the
    table renders the runs and leaves the fit out."""
    import json
    import shutil

    from benchmarks import figures

    shutil.copy(figures.RESULTS / "suite-full.json", tmp_path / "suite-full.json")
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    data = json.loads((tmp_path / "suite-full.json").read_text())
    runs = [r for r in data["tasks"]["dedup_scale"]["result"] if "full" in r]
    data["tasks"]["dedup_scale"]["result"] = runs + [{"growth": {"exponent": 1.2}}]
    (tmp_path / "suite-full.json").write_text(json.dumps(data))
    table = figures.render("dedup-scale")
    assert sum(f"| {r['clips']:,} |" in table for r in runs) == len(runs)
