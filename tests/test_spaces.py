"""Bring-your-own embeddings: import, refusals, and use by rare / query / selection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from engine.curation.select import select_clips
from engine.errors import InputError, NotFoundError
from engine.scenes.query import search_clip, search_vector
from engine.scenes.rarity import compute_rarity, load_rarity
from engine.scenes.spaces import import_files, import_space
from engine.store.region import RegionStore
from engine.surfaces.cli import app
from tests.conftest import make_new_clip

N = 30
DIM = 16


@pytest.fixture
def store(home):
    rng = np.random.default_rng(0)
    s = RegionStore.open(home.region("us-west"), create=True)
    with s.writer():
        s.append_clips([make_new_clip(rng, f"c{i:02d}", k=2, drive_id=f"d{i}") for i in range(N)])
    yield s
    s.close()


def _space_vectors(seed=1):
    """16-d vectors: c00..c28 in one tight cluster, c29 far away (the rare one in this space)."""
    rng = np.random.default_rng(seed)
    v = np.ones((N, DIM)) + 0.05 * rng.standard_normal((N, DIM))
    v[N - 1] = -np.ones(DIM)
    return (3.0 * v).astype(np.float64)  # not normalised, float64: both fixed on import


def test_import_normalises_and_is_used_by_query_and_rare(store):
    ids = [f"c{i:02d}" for i in range(N)]
    rep = import_space(store, "nn-v1", _space_vectors(), ids)
    assert (rep.count, rep.dim, rep.version, rep.replaced) == (N, DIM, 1, False)
    rows, vecs = store.space_vectors("nn-v1")
    assert vecs.dtype == np.float32 and np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-6)
    assert rows.tolist() == list(range(N))
    # rare in the space: c29 is alone; in the default (random) space it is not special
    res = compute_rarity(store, k=3, space="nn-v1")
    assert res.clip_ids[0] == "c29" and res.percentiles[0] == 100.0
    assert load_rarity(store, space="nn-v1")[29][1] == 100.0
    assert store.rarity() == {}  # the default space's stored scores are untouched
    # query in the space: 16-d vectors, neighbours from the cluster
    hits = search_clip(store, "c00", k=5, space="nn-v1")
    assert len(hits) == 5 and "c29" not in {h.clip_id for h in hits}
    with pytest.raises(InputError, match="128 dimensions but space 'nn-v1'"):
        search_vector(store, np.ones(128, np.float32), space="nn-v1")
    sel = select_clips(store, 3, mix={"rare": 1.0}, space="nn-v1")
    assert [(c.clip_id, c.reason) for c in sel.chosen][0] == ("c29", "rare")


def test_refusals_name_the_problem(store, tmp_path):
    ids = [f"c{i:02d}" for i in range(N)]
    v = _space_vectors()
    with pytest.raises(InputError, match="30 vectors but 29 ids"):
        import_space(store, "s", v, ids[:-1])
    bad = v.copy()
    bad[4, 2] = np.nan
    with pytest.raises(InputError, match="NaN or inf.*'c04'"):
        import_space(store, "s", bad, ids)
    bad = v.copy()
    bad[5] = np.inf
    with pytest.raises(InputError, match="NaN or inf.*'c05'"):
        import_space(store, "s", bad, ids)
    bad = v.copy()
    bad[6] = 0
    with pytest.raises(InputError, match="all zeros.*'c06'"):
        import_space(store, "s", bad, ids)
    with pytest.raises(InputError, match="duplicate ids.*'c01'"):
        import_space(store, "s", v, ids[:-1] + ["c01"])
    with pytest.raises(InputError, match="not clips of region.*'zz9'"):
        import_space(store, "s", v, ids[:-1] + ["zz9"])
    with pytest.raises(InputError, match="space name"):
        import_space(store, "../x", v, ids)
    with pytest.raises(InputError, match="space name"):
        import_space(store, "default", v, ids)
    import_space(store, "s", v, ids)
    with pytest.raises(InputError, match="holds 16-d vectors but the file has 8-d"):
        import_space(store, "s", v[:, :8], ids)
    rep = import_space(store, "s", v[:, :8], ids, replace=True)
    assert (rep.dim, rep.version, rep.replaced) == (8, 2, True)
    assert store.space_vectors("s")[1].shape == (N, 8)
    np.save(tmp_path / "one.npy", v[0])
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    with pytest.raises(InputError, match="2-D float array"):
        import_files(store, "t", tmp_path / "one.npy", tmp_path / "ids.txt")
    with pytest.raises(NotFoundError, match="known: s"):
        store.space_info("nope")
    assert store.spaces()[0]["name"] == "s"


def test_partial_space_and_forget(store):
    ids = [f"c{i:02d}" for i in range(10)]
    import_space(store, "part", _space_vectors()[:10], ids)
    res = compute_rarity(store, k=3, space="part")
    assert len(res.rows) == 10  # only clips with a vector in the space
    with pytest.raises(InputError, match="no vector for 20"):
        select_clips(store, 3, space="part")
    with pytest.raises(InputError, match="c15.*no vector in space"):
        search_clip(store, "c15", space="part")
    vec_row = store.db.execute("SELECT vec_row FROM space_vectors WHERE space='part' AND clip_row=0").fetchone()[0]
    with store.writer():
        store.tombstone([0])
    rows, _ = store.space_vectors("part")
    assert 0 not in rows.tolist()
    version = store.spaces()[0]["version"]
    erased = np.asarray(store.features[f"spaces/part/v{version}"][vec_row])
    assert not erased.any()  # an erasure request erases the imported vector at once
    hits = search_clip(store, "c01", k=20, space="part")
    assert "c00" not in {h.clip_id for h in hits} and len(hits) == 8


def test_cli_import_rare_query(home, store, tmp_path):
    ids = np.array([f"c{i:02d}" for i in range(N)])
    np.save(tmp_path / "v.npy", _space_vectors().astype(np.float32))
    np.save(tmp_path / "ids.npy", ids)
    runner = CliRunner()
    base = ["--home", str(home.path), "--region", "us-west"]
    r = runner.invoke(app, ["embeddings", "import", str(tmp_path / "v.npy"), *base, "--name", "nn",
                            "--ids", str(tmp_path / "ids.npy"), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["count"] == N
    r = runner.invoke(app, ["rare", *base, "--space", "nn", "--top", "1", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["clip_id"] == "c29"  # stderr: these clips carry no trigger version
    r = runner.invoke(app, ["query", *base, "--space", "nn", "--clip", "c01", "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == 3
    (tmp_path / "bad.txt").write_text("c00\nc00\n")
    np.save(tmp_path / "two.npy", np.ones((2, 4), np.float32))
    r = runner.invoke(app, ["embeddings", "import", str(tmp_path / "two.npy"), *base, "--name", "x",
                            "--ids", str(tmp_path / "bad.txt")])
    assert r.exit_code == 2 and "duplicate ids" in r.output
    r = runner.invoke(app, ["rare", *base, "--space", "missing"])
    assert r.exit_code == 2 and "embeddings import" in r.output
