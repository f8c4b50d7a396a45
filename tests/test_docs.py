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
