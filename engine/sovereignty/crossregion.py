"""Cross-region operations under each region's export policy.

Every cross-region operation has a *destination*: the region the results are delivered to (the
region the operator works from). Work runs inside each region; everything that leaves a region
passes the egress gate (:func:`engine.sovereignty.egress.send`): the policy is checked for every field that
crosses and an audit line is appended to that region's log first — if the line cannot be
written, nothing is sent. Fields a policy does not allow are removed, and a region that may
send nothing contributes nothing, with the reason.

* :func:`cross_query`: the query vector goes into each region (if it came from a region's clip,
  that region must allow ``embeddings`` to leave for it); each region returns only ids, scores
  (and vectors) its policy allows.
* :func:`cross_duplicates`: region A's keyframe hashes — one sequence per clip under a token
  drawn at random for this run, never clip ids, counts, quality flags, frames or embeddings —
  go to region B, which matches them against its own keyframe index and aligns them in time; B
  returns which tokens duplicate which of its clips (``relations``, and ids and scores only if
  B's policy grants them to A). Tokens are resolved to clip ids only inside A.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

import numpy as np

from engine.errors import PolicyError
from engine.scenes.query import Filters, search_vector
from engine.sovereignty import egress
from engine.sovereignty.regions import Home
from engine.store.region import RegionStore, span_rows


@dataclass
class RegionAnswer:
    region: str
    status: str  # "ok" | "refused"
    reason: str = ""
    fields: list[str] = field(default_factory=list)
    hits: list[dict] = field(default_factory=list)


def _expand(home: Home, regions: list[str] | str) -> list[str]:
    if regions == "all" or regions == ["all"]:
        return sorted(home.regions)
    names = regions.split(",") if isinstance(regions, str) else regions
    for n in names:
        home.region(n)
    return list(names)


def cross_query(home: Home, vector: np.ndarray, *, destination: str, regions: list[str] | str = "all",
                origin: str | None = None, k: int = 10, filters: Filters | None = None,
                with_vectors: bool = False) -> list[RegionAnswer]:
    """Top-k per region for ``vector``, delivered to ``destination`` under every policy.

    ``origin`` is the region whose clip the vector came from (None for an outside file)."""
    dest = home.region(destination)
    src = home.region(origin) if origin else None
    answers: list[RegionAnswer] = []
    for name in _expand(home, regions):
        region = home.region(name)
        if src is not None and name != src.name and not src.allows("embeddings", name):
            answers.append(RegionAnswer(name, "refused",
                                        f"policy of {src.name} forbids sending embeddings (the query "
                                        f"vector) to {name}"))
            continue
        allowed = [f for f in ("ids", "scores", "embeddings") if region.allows(f, dest.name)]
        if not with_vectors and "embeddings" in allowed:
            allowed.remove("embeddings")
        if not {"ids", "scores"} & set(allowed):
            answers.append(RegionAnswer(name, "refused",
                                        f"policy of {name} allows neither ids nor scores to leave for {dest.name}"))
            continue
        if not (region.path / "catalog.sqlite").exists():
            answers.append(RegionAnswer(name, "ok", "region has no clips", allowed))
            continue
        if src is not None and name != src.name:
            egress.send(src, name, operation="query-vector", fields=["embeddings"], records=1)
        with RegionStore.open(region) as store:
            hits = search_vector(store, vector, k, filters=filters)
            vecs = {}
            if "embeddings" in allowed and hits:
                for h in hits:
                    r = store.clip_row(h.clip_id)
                    vecs[h.clip_id] = store.read_rows("clip_embeddings", r, r + 1)[0].tolist()
        out = []
        for h in hits:
            rec = {"region": name, "rank": h.rank}
            if "ids" in allowed:
                rec["clip_id"] = h.clip_id
            if "scores" in allowed:
                rec["score"] = round(h.score, 6)
            if h.clip_id in vecs:
                rec["embedding"] = vecs[h.clip_id]
            out.append(rec)
        if name != dest.name and out:
            egress.send(region, dest.name, operation="query-results", fields=allowed, records=len(out))
        answers.append(RegionAnswer(name, "ok", "", allowed, out))
    return answers


def merge_hits(answers: list[RegionAnswer], k: int) -> list[dict]:
    """All regions' hits, best score first (hits without a permitted score go last)."""
    hits = [h for a in answers for h in a.hits]
    hits.sort(key=lambda h: -h.get("score", -np.inf))
    return hits[:k] if k else hits


# ---------------------------------------------------------------------- cross-border duplicates
@dataclass
class CrossDuplicates:
    source: str
    target: str
    status: str
    reason: str = ""
    matches: list[dict] = field(default_factory=list)  # one per (source clip, target clip) pair
    clips_sent: int = 0
    keyframes_sent: int = 0


def export_hashes(store: RegionStore, rng: np.random.Generator | None = None) -> tuple[dict, dict[str, str]]:
    """The hash payload a region sends: one keyframe-hash sequence per clip, keyed by a token
    drawn at random for this call (fresh every run, so tokens link nothing across runs).

    Keyframes below the quality floor (blank or broken frames) carry random bytes from ``rng``
    instead of their hash: they match nothing, keep the sequence's timing, and no quality flag
    crosses. Clips are sent in random order. Returns the payload and the token -> clip id table
    that never leaves the region."""
    from engine.index import QUALITY_FLOOR

    rng = rng if rng is not None else np.random.default_rng(secrets.randbits(128))
    table = store.clip_table()
    kf = store.keyframes(table.snapshot)
    sequences: dict[str, np.ndarray] = {}
    token_ids: dict[str, str] = {}
    for i in rng.permutation(len(table)):
        rows = span_rows(table.kf_start[i:i + 1], table.kf_count[i:i + 1])
        hashes = np.array(kf["hashes"][rows])
        weak = kf["quality"][rows] < QUALITY_FLOOR
        hashes[weak] = rng.integers(0, 256, (int(weak.sum()), hashes.shape[1]), dtype=np.uint8)
        token = secrets.token_hex(12)
        sequences[token] = hashes
        token_ids[token] = table.clip_ids[i]
    return {"hashes": sequences}, token_ids


def _flat(payload: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Tokens, concatenated hashes and per-token counts of a received payload."""
    tokens = list(payload["hashes"])
    seqs = [np.asarray(payload["hashes"][t], np.uint8) for t in tokens]
    counts = np.array([len(x) for x in seqs], np.int64)
    hashes = np.concatenate(seqs) if seqs else np.zeros((0, 32), np.uint8)
    return tokens, np.ascontiguousarray(hashes), counts


def match_hashes(store: RegionStore, payload: dict, params=None) -> list[dict]:
    """Inside the target region: which payload clips (by token) duplicate which local clips.

    Candidates come from the region's keyframe index; verification is :func:`dedup.verify_pairs`
    on a table of the remote clips (tokens, no metadata) followed by the local ones, so the
    cross-border check applies exactly the rules of in-region dedup."""
    from engine.index import QUALITY_FLOOR, ensure_indexes
    from engine.matching.dedup import DedupParams, verify_pairs
    from engine.store.region import ClipTable

    params = params or DedupParams()
    table = store.clip_table()
    tokens, remote_hashes, remote_counts = _flat(payload)
    payload = {"hashes": remote_hashes, "counts": remote_counts,
               "valid": np.ones(len(remote_hashes), bool)}
    n_remote = len(remote_counts)
    if len(table) == 0 or n_remote == 0:
        return []
    kf = store.keyframes(table.snapshot)
    kf_index, _ = ensure_indexes(store, save=False)  # a read writes nothing
    token_of_kf = np.repeat(np.arange(n_remote), payload["counts"])
    q = np.flatnonzero(payload["valid"])
    lims, _, ids = kf_index.range_search(np.ascontiguousarray(payload["hashes"][q]), params.candidate_radius)
    local_of_kf = np.full(len(kf["hashes"]), -1, np.int64)
    local_of_kf[span_rows(table.kf_start, table.kf_count)] = np.repeat(np.arange(len(table)), table.kf_count)
    qa = np.repeat(token_of_kf[q], np.diff(lims))
    lb = local_of_kf[ids]
    keep = lb >= 0
    if not keep.any():
        return []
    # one vote per remote keyframe and local clip
    trip = np.unique(np.stack([qa[keep], lb[keep], np.repeat(q, np.diff(lims))[keep]], 1), axis=0)
    cand, n = np.unique(trip[:, :2], axis=0, return_counts=True)
    cand = cand[n >= params.min_candidate_matches]
    if len(cand) == 0:
        return []
    # combined table: remote clips get rows 0..n_remote-1, local clips follow
    n_hash = len(payload["hashes"])
    remote_start = np.concatenate([[0], np.cumsum(payload["counts"])[:-1]]).astype(np.int64)
    nan = np.full(n_remote, np.nan)
    combined = ClipTable(
        table.snapshot,
        np.arange(n_remote + len(table), dtype=np.int64),
        [f"token-{t}" for t in range(n_remote)] + list(table.clip_ids),
        [""] * n_remote + list(table.drive_ids),
        [""] * n_remote + list(table.vehicle_ids),
        np.concatenate([nan, table.start_time]),
        np.concatenate([np.asarray(payload["counts"]) / params.keyframe_hz, table.duration_s]),
        np.concatenate([remote_start, table.kf_start + n_hash]).astype(np.int64),
        np.concatenate([payload["counts"], table.kf_count]).astype(np.int64),
        np.concatenate([nan, table.quality_mean]),
        [""] * n_remote + list(table.sources),
        np.concatenate([np.zeros(n_remote), table.source_offset_s]),
        [f"remote-{t}" for t in range(n_remote)] + list(table.recording_ids),
        [""] * n_remote + list(table.cameras),
    )
    hashes = np.ascontiguousarray(np.concatenate([payload["hashes"], kf["hashes"]]))
    valid = np.concatenate([payload["valid"], kf["quality"] >= QUALITY_FLOOR])
    pairs = np.stack([cand[:, 0], cand[:, 1] + n_remote], axis=1).astype(np.int64)
    return [{"token": tokens[int(p.a)], "clip_id": table.clip_ids[p.b - n_remote], "relation": p.relation,
             "offset_s": p.offset_s, "matches": p.matches, "mean_distance": round(p.mean_dist, 2)}
            for p in verify_pairs(pairs, combined, hashes, valid, params)]


def cross_duplicates(home: Home, source: str, target: str) -> CrossDuplicates:
    """Which clips of ``source`` duplicate clips of ``target``.

    Crosses: ``hashes`` from source to target (one random token per clip and run), then
    ``relations`` (relation, offset; per token) from target to source, plus the target's clip
    ids and match scores only where its policy grants ``ids``/``scores`` to the source. Both
    directions pass the egress gate; either policy refusing stops the check before anything
    crosses."""
    src, dst = home.region(source), home.region(target)
    if src.name == dst.name:
        raise PolicyError("cross-border duplicate check needs two different regions; use `clipdex dedup` within one")
    for region, fields, to in ((src, ["hashes"], dst.name), (dst, ["relations"], src.name)):
        why = egress.refusal(region, fields, to, operation="crossdup")
        if why:
            return CrossDuplicates(src.name, dst.name, "refused", why)
    with RegionStore.open(src) as s:
        payload, token_ids = export_hashes(s)
    n_hashes = int(sum(len(h) for h in payload["hashes"].values()))
    egress.send(src, dst.name, operation="crossdup-hashes", fields=["hashes"], records=n_hashes,
                detail={"clips": len(token_ids)})
    with RegionStore.open(dst) as t:
        found = match_hashes(t, payload)
    back = egress.send(dst, src.name, operation="crossdup-results", fields=["relations"],
                       optional=["ids", "scores"], records=len(found))
    returned = []  # what the target sends back: the source's own tokens, relations, ids/scores by policy
    for f in found:
        rec = {"token": f["token"], "relation": f["relation"], "offset_s": f["offset_s"]}
        if "ids" in back:
            rec["target_clip"] = f["clip_id"]
        if "scores" in back:
            rec["matches"], rec["mean_distance"] = f["matches"], f["mean_distance"]
        returned.append(rec)
    matches = []
    for rec in returned:
        rec = dict(rec)
        rec["source_clip"] = token_ids[rec.pop("token")]  # resolved back home, in the source region
        matches.append(rec)
    matches.sort(key=lambda r: (r["source_clip"], r.get("target_clip", "")))
    anonymous = "ids" not in back
    return CrossDuplicates(src.name, dst.name, "ok", "" if not anonymous else
                           f"policy of {dst.name} returns no clip ids to {src.name}: matches are anonymous",
                           matches, len(token_ids), n_hashes)


# ---------------------------------------------------------------------- per-region selection
def parse_budgets(text: str, home: Home) -> dict[str, int]:
    """``"us-west=100,cn-east=50"`` or ``"all=100"`` -> {region: budget}."""
    from engine.errors import InputError

    out: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, val = part.partition("=")
        try:
            budget = int(val)
        except ValueError:
            raise InputError(f"--budgets {text!r}: {part!r} needs REGION=COUNT, e.g. us-west=100") from None
        names = sorted(home.regions) if name == "all" else [home.region(name).name]
        for n in names:
            out[n] = budget
    if not out:
        raise InputError("--budgets is empty; give e.g. all=100 or us-west=100,cn-east=50")
    return out


def select_per_region(home: Home, budgets: dict[str, int], *, name: str = "train", **kwargs) -> list[dict]:
    """One selection and one manifest per region, each written inside its own region folder."""
    from engine.curation.select import select_clips, write_manifest
    from engine.ids import validate_clip_id

    validate_clip_id(name)  # the manifest name becomes a file name: same rules as a clip id
    out = []
    for region_name, budget in budgets.items():
        region = home.region(region_name)
        with RegionStore.open(region) as store:
            sel = select_clips(store, budget, **kwargs)
        path = write_manifest(sel, region.path / "manifests" / f"{name}.jsonl", home=home)
        out.append({"region": region_name, "budget": budget, "selected": len(sel.chosen),
                    "by_reason": sel.counts, "manifest": str(path)})
    return out
