"""A region never compares clip embeddings of different versions: it refuses and says how to fix."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import StoreError
from engine.index import ensure_embedding_index
from engine.scenes.query import search_vector
from engine.store.region import RegionStore
from kernels import EMBEDDING_VERSION
from tests.conftest import make_new_clip


def test_a_region_with_older_embeddings_refuses_to_compare_them(home):
    rng = np.random.default_rng(3)
    with RegionStore.open(home.region("us-west"), create=True) as store, store.writer():
        store.append_clips([make_new_clip(rng, f"c{i}") for i in range(4)], "job")
        assert store.embeddings(store.snapshot()).shape[0] == 4
        # two clips as an older clipdex embedded them
        store.db.execute("UPDATE clips SET embedding_version='clipdex-emb-v2' WHERE clip_id IN ('c0', 'c1')")
        store.db.commit()
    with RegionStore.open(home.region("us-west")) as store:
        with pytest.raises(StoreError, match=r"2 clip\(s\) of clipdex-emb-v2, not " + EMBEDDING_VERSION):
            store.embeddings(store.snapshot())
        with pytest.raises(StoreError, match="ingest their sources again"):
            ensure_embedding_index(store, save=False)
        with pytest.raises(StoreError, match="never compared"):
            search_vector(store, np.ones(store.embedding_dim, np.float32), 3)
