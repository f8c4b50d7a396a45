"""Sources on object storage: ``s3://bucket/prefix`` against a real S3-compatible server (moto's
server mode) that the tests start on loopback.

Videos are encoded here with PyAV, uploaded, ingested from ``s3://``, ingested again (a no-op
that reads nothing), and deduplicated against local re-encoded copies. Bad input: a corrupt
object fails alone, an unknown bucket, missing credentials and an unreachable endpoint each give
a clear error within seconds, hostile keys never become paths, and an object replaced after its
listing is refused.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import socket
import time
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner

pytest.importorskip("s3fs", reason="s3:// sources need the s3 extra (pip install 'clipdex[s3]')")
moto_server = pytest.importorskip("moto.server",
                                  reason="the loopback S3 server needs moto[server] (test extra)")
boto3 = pytest.importorskip("boto3", reason="uploads to the loopback S3 server need boto3")

from engine.errors import SourceError  # noqa: E402
from engine.sources import discover, iter_clips  # noqa: E402
from engine.sources import remote as remote_mod  # noqa: E402
from engine.sources.video import file_digest  # noqa: E402
from engine.surfaces.cli import app  # noqa: E402

runner = CliRunner()


def _frames(seed: int, seconds: float, fps: int = 10) -> np.ndarray:
    """A texture panning sideways (``uint8[T, 96, 160, 3]``): every keyframe differs."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (14, 22 + int(seconds * fps), 3)).astype(np.uint8)
    wide = np.kron(small, np.ones((8, 8, 1), np.uint8))
    return np.stack([wide[:96, 8 * i: 8 * i + 160] for i in range(int(seconds * fps))])


def _encode(path: Path, frames: np.ndarray, fps: int = 10, bitrate: int | None = None) -> Path:
    """H.264 MP4 of ``frames`` (PyAV)."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("h264", rate=Fraction(fps))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "threads": "1"}
        if bitrate:
            stream.bit_rate = bitrate
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    """Two unrelated recordings and, locally, a re-encoded copy of each."""
    root = tmp_path_factory.mktemp("s3-videos")
    return {
        "drive_a": _encode(root / "drive_a.mp4", _frames(1, 4.0)),
        "drive_b": _encode(root / "drive_b.mp4", _frames(2, 4.0)),
        "drive_a_copy": _encode(root / "drive_a_copy.mp4", _frames(1, 4.0), bitrate=200_000),
        "drive_b_copy": _encode(root / "drive_b_copy.mp4", _frames(2, 4.0), bitrate=200_000),
    }


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on a free loopback port for this module."""
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


def _aws_env(monkeypatch, tmp_path: Path, endpoint: str | None, credentials: bool = True) -> None:
    """The standard AWS environment pointing at ``endpoint``; no user profile or config."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "aws-empty").write_text("")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-empty"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-empty"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    if credentials:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "clipdex-test")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "clipdex-test-secret")


@pytest.fixture()
def bucket(monkeypatch, tmp_path, s3_server):
    """A fresh bucket on the loopback server, with the environment pointing at it; returns an
    ``upload(key, file_or_bytes)`` function and the bucket name."""
    _aws_env(monkeypatch, tmp_path, s3_server)
    name = f"clips-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1",
                          aws_access_key_id="clipdex-test",
                          aws_secret_access_key="clipdex-test-secret")
    client.create_bucket(Bucket=name)

    def upload(key: str, body: Path | bytes) -> str:
        data = body.read_bytes() if isinstance(body, Path) else body
        client.put_object(Bucket=name, Key=key, Body=data)
        return f"s3://{name}/{key}"

    upload.bucket = name
    upload.client = client
    return upload


def cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def new_home(tmp_path: Path) -> str:
    home = str(tmp_path / "home")
    code, out = cli("regions", "add", "r1", "--home", home)
    assert code == 0, out
    return home


def ingest_json(home: str, *sources: str) -> tuple[int, dict]:
    code, out = cli("ingest", *sources, "--region", "r1", "--home", home, "--json")
    return code, json.loads(out[out.index("{"):])


def test_ingest_from_s3_and_reingest_reads_nothing(tmp_path, bucket, videos, monkeypatch):
    bucket("cams/drive_a.mp4", videos["drive_a"])
    bucket("cams/day2/drive_b.mp4", videos["drive_b"])
    bucket("cams/notes.txt", b"not a video")
    bucket("cams/.partial.mp4", b"an upload in progress")
    home = new_home(tmp_path)

    code, report = ingest_json(home, f"s3://{bucket.bucket}/cams")
    assert code == 0, report
    assert report["ingested"] == 2 and report["failed"] == 0
    skipped = {s["clip_id"]: s["reason"] for s in report["skips"]}
    assert "not a video" in skipped[f"s3://{bucket.bucket}/cams/notes.txt"]
    assert "hidden name" in skipped[f"s3://{bucket.bucket}/cams/.partial.mp4"]

    code, out = cli("stats", "--region", "r1", "--home", home, "--json")
    assert code == 0, out

    # the catalog names each clip by its URL; its digest is that of the same bytes on disk
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(home).region("r1")) as store:
        records = {r["clip_id"]: r for r in store.clip_records()}
    assert set(records) == {"drive_a", "day2__drive_b"}
    assert records["drive_a"]["source"] == f"s3://{bucket.bucket}/cams/drive_a.mp4"
    assert records["drive_a"]["recording_id"] == file_digest(videos["drive_a"])
    assert records["drive_a"]["meta"]["object"]["size"] == videos["drive_a"].stat().st_size

    # again: skipped by URL + ETag + size, without opening an object
    def no_reads(*args, **kwargs):
        raise AssertionError("a re-ingest of unchanged objects must not read them")

    monkeypatch.setattr(remote_mod.ObjectReader, "__init__", no_reads)
    code, report = ingest_json(home, f"s3://{bucket.bucket}/cams")
    assert code == 0, report
    assert report["ingested"] == 0 and report["failed"] == 0
    reasons = [s["reason"] for s in report["skips"]]
    assert sum("already ingested" in r and "nothing decoded" in r for r in reasons) == 2


def test_s3_clips_dedup_against_local_copies(tmp_path, bucket, videos):
    bucket("fleet/drive_a.mp4", videos["drive_a"])
    bucket("fleet/drive_b.mp4", videos["drive_b"])
    local = tmp_path / "local"
    local.mkdir()
    shutil.copy(videos["drive_a_copy"], local / "drive_a_copy.mp4")
    shutil.copy(videos["drive_b_copy"], local / "drive_b_copy.mp4")
    shutil.copy(videos["drive_a"], local / "drive_a_same_bytes.mp4")
    home = new_home(tmp_path)

    code, report = ingest_json(home, f"s3://{bucket.bucket}/fleet", str(local))
    assert code == 0, report
    # the byte-identical local file is the object's recording: skipped, as for two local copies
    assert report["ingested"] == 4, report
    assert [(s["clip_id"], s["reason"]) for s in report["skips"]] == [
        ("drive_a_same_bytes", "same content earlier in this job")]

    code, out = cli("dedup", "--region", "r1", "--home", home, "--pairs", "--json")
    assert code == 0, out
    result = json.loads(out)
    groups = [set(g["members"]) for g in result["groups"]]
    assert {"drive_a", "drive_a_copy"} in groups, groups
    assert {"drive_b", "drive_b_copy"} in groups, groups
    assert not any({"drive_a", "drive_b"} <= g for g in groups)

    # export reads frames from local files: an object's clips fail with the fix, the rest export
    manifest = Path(home) / "regions" / "r1" / "manifests" / "train.jsonl"
    code, out = cli("select", "--region", "r1", "--home", home, "--budget", "4", "--out",
                    str(manifest), "--mix", "random=1", "--json")
    assert code == 0, out
    code, out = cli("export", "--manifest", str(manifest), "--home", home, "--json")
    assert code == 1
    failed = {f["clip_id"]: f["reason"] for f in json.loads(out[out.index("{"):])["failed"]}
    assert failed and all(cid in ("drive_a", "drive_b") for cid in failed), failed
    assert all("ingested from object storage" in r for r in failed.values())


def test_corrupt_object_fails_alone_and_loses_nothing(tmp_path, bucket, videos):
    bucket("mixed/a_good.mp4", videos["drive_a"])
    bucket("mixed/b_corrupt.mp4", b"\x00\x00\x00\x18ftypmp42" + os.urandom(4000))
    data = videos["drive_b"].read_bytes()
    bucket("mixed/c_truncated.mp4", data[: len(data) // 3])
    bucket("mixed/d_good.mp4", videos["drive_b"])
    home = new_home(tmp_path)

    code, report = ingest_json(home, f"s3://{bucket.bucket}/mixed")
    assert code == 1
    failed = {f["item"]: f["error"] for f in report["failures"]}
    corrupt = f"s3://{bucket.bucket}/mixed/b_corrupt.mp4"
    assert corrupt in failed and "not a readable video" in failed[corrupt], failed
    assert report["ingested"] >= 2  # a_good and d_good (a truncated file may yield a clip)
    code, again = ingest_json(home, f"s3://{bucket.bucket}/mixed")
    assert again["ingested"] == 0  # everything good was committed the first time
    assert corrupt in {f["item"] for f in again["failures"]}


def test_unreachable_endpoint_fails_fast(tmp_path, monkeypatch):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _aws_env(monkeypatch, tmp_path, f"http://127.0.0.1:{port}")
    home = new_home(tmp_path)
    t0 = time.monotonic()
    code, report = ingest_json(home, "s3://clips/cams")
    elapsed = time.monotonic() - t0
    assert code == 1
    (failure,) = report["failures"]
    assert "cannot reach the object store" in failure["error"]
    assert f"127.0.0.1:{port}" in failure["error"] and "AWS_ENDPOINT_URL" in failure["error"]
    assert elapsed < 20, elapsed


def test_unknown_bucket_and_missing_credentials(tmp_path, bucket, monkeypatch, s3_server):
    home = new_home(tmp_path)
    code, report = ingest_json(home, "s3://no-such-bucket-here/cams")
    assert code == 1
    assert "bucket 'no-such-bucket-here' does not exist" in report["failures"][0]["error"]

    code, report = ingest_json(home, f"s3://{bucket.bucket}/nothing-here")
    assert code == 1
    assert "no objects under this prefix" in report["failures"][0]["error"]

    _aws_env(monkeypatch, tmp_path, s3_server, credentials=False)
    t0 = time.monotonic()
    code, report = ingest_json(home, f"s3://{bucket.bucket}/cams")
    assert code == 1
    message = report["failures"][0]["error"]
    assert "no credentials" in message and "AWS_ACCESS_KEY_ID" in message, message
    assert time.monotonic() - t0 < 20

    code, out = cli("ingest", "gs://bucket/x", "--region", "r1", "--home", home, "--json")
    assert code == 1 and "scheme 'gs' is not supported" in out


def test_hostile_keys_never_become_paths(tmp_path, bucket, videos, monkeypatch):
    for key in ("keys/ok.mp4", "keys/../evil.mp4", "keys//abs.mp4", "keys/ctl\x01name.mp4",
                "keys/back\\slash.mp4", "keys/./dot.mp4"):
        bucket(key, videos["drive_a"])
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    items = discover([f"s3://{bucket.bucket}/keys"])
    videos_found = [i for i in items if i.kind == "video"]
    errors = [i for i in items if i.kind == "error"]
    assert [i.path for i in videos_found] == [f"s3://{bucket.bucket}/keys/ok.mp4"]
    assert videos_found[0].clip_id_base == "ok" and videos_found[0].remote
    assert len(errors) == 5, [e.message for e in errors]
    assert all("rename the object" in e.message for e in errors)
    assert not any("\x01" in e.message for e in errors)  # control characters are escaped
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written locally

    # an item travels to Dask workers as its URL and version only
    clone = pickle.loads(pickle.dumps(videos_found[0]))
    assert clone == videos_found[0] and isinstance(clone.path, str)


def test_object_replaced_after_listing_is_refused(tmp_path, bucket, videos):
    url = bucket("swap/clip.mp4", videos["drive_a"])
    (item,) = discover([url])
    assert item.kind == "video" and item.version.endswith(f":{videos['drive_a'].stat().st_size}")
    bucket("swap/clip.mp4", videos["drive_b"])
    with pytest.raises(SourceError, match="changed since it was listed"):
        next(iter_clips(item))


def test_dask_workers_read_objects_themselves(tmp_path, bucket, videos):
    """On a Dask cluster each task gets the object's URL and version, never its bytes; the
    worker opens the object with the job's AWS environment and the catalog is the same."""
    pytest.importorskip("distributed", reason="the Dask executor needs clipdex[dask]")
    from engine.ingest.executors import DaskExecutor
    from engine.ingest.pipeline import IngestOptions, ingest
    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    bucket("dask/drive_a.mp4", videos["drive_a"])
    bucket("dask/drive_b.mp4", videos["drive_b"])
    url = f"s3://{bucket.bucket}/dask"
    local_home = Home.open(tmp_path / "local", create=True)
    local_home.add_region("r1")
    dask_home = Home.open(tmp_path / "dask", create=True)
    dask_home.add_region("r1")
    local = ingest(local_home, "r1", [url], IngestOptions(workers=1))
    with DaskExecutor.start(None, workers=1) as executor:
        remote = ingest(dask_home, "r1", [url], IngestOptions(), executor=executor)
    assert local.ok and remote.ok and local.ingested == remote.ingested == ["drive_a", "drive_b"]

    def catalog(home: Home) -> list[tuple]:
        with RegionStore.open(home.region("r1")) as store:
            return [(r["clip_id"], r["source"], r["recording_id"]) for r in store.clip_records()]

    assert catalog(local_home) == catalog(dask_home)


def test_split_objects_keep_the_local_digest_and_reingest_by_split(tmp_path, bucket, videos):
    """With --clip-seconds every piece carries the whole object's digest (that of the same
    bytes on disk); a re-ingest with the same split reads nothing, another split decodes the
    object again."""
    bucket("split/drive_a.mp4", videos["drive_a"])
    home = new_home(tmp_path)
    url = f"s3://{bucket.bucket}/split"
    code, report = ingest_json(home, url, "--clip-seconds", "1.5")
    assert code == 0, report
    assert report["ingested"] == 3  # 4 s: 1.5 + 1.5 + 1.0

    from engine.sovereignty.regions import Home
    from engine.store.region import RegionStore

    with RegionStore.open(Home.open(home).region("r1")) as store:
        records = store.clip_records()
    assert {r["recording_id"] for r in records} == {file_digest(videos["drive_a"])}
    assert [r["clip_id"] for r in records] == ["drive_a-0000", "drive_a-0001", "drive_a-0002"]

    code, report = ingest_json(home, url, "--clip-seconds", "1.5")
    assert code == 0 and report["ingested"] == 0
    assert "nothing decoded" in report["skips"][0]["reason"]
    code, report = ingest_json(home, url, "--clip-seconds", "2")
    assert code == 0 and report["ingested"] == 2, report  # cut again: pieces of their own
