"""clipdex: sources, ingest, the region store, indexes, matching, scenes, curation and
sovereignty, one package per stage (see docs/design.md, Package layout)."""
