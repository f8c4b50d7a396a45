"""Sources on object storage: ``s3://bucket/prefix`` listed and read through fsspec (s3fs).

Needs the ``s3`` extra (``pip install 'clipdex[s3]'``). Credentials, region and endpoint come
from the standard AWS environment and files, read by botocore: ``AWS_ACCESS_KEY_ID`` /
``AWS_SECRET_ACCESS_KEY`` (``AWS_SESSION_TOKEN``), ``AWS_PROFILE`` (``~/.aws/credentials``,
``~/.aws/config``), ``AWS_ENDPOINT_URL`` (or ``endpoint_url`` in the profile) for an
S3-compatible server. Nothing is configured in clipdex itself.

Listing
    A URL that names an object is that object; otherwise it is a prefix (``s3://b/cams`` means
    the keys under ``cams/``), listed recursively in key order. Keys are classified by the
    rules of local discovery (:mod:`engine.sources.discover`): video extensions are sources,
    a key segment starting with ``.`` is hidden, companion files (``.csv``, ``.json`` ...)
    pass silently, other keys are listed as skipped. Image folders, ``.zarr`` stores and
    telemetry sidecars are read from local disk only: an image folder or store on object
    storage is an error item, a sidecar beside an object is listed as skipped.

Keys are names, never paths
    A key is only ever part of a URL and, through its part below the prefix, of a clip id
    (sanitised like a relative path). Keys with control characters, a backslash, an empty
    segment (``//``, a leading ``/``) or a ``.``/``..`` segment are error items and are not
    read; nothing is written to the local disk under any key.

Reading
    The decoder reads an object through fsspec's buffered file: range requests of
    :data:`BLOCK_SIZE` bytes with read-ahead, seeking where the container asks (an MP4 whose
    index is at the end is read there first, then from the start). No object is downloaded to a
    temporary file. The content digest (blake2b, as for local files) is computed from the bytes
    the decoder reads while its reads run forward; bytes it skipped are read once more for the
    digest. The clips of a split object (``clip_seconds``) are yielded at the end of its stream,
    once the digest is known. Every range request carries the ETag seen when the object was opened: an object
    replaced while it is read fails with a clear error.

Identity
    A listed object carries ``version`` = ``<ETag>:<size>``. Its clips record it in their
    metadata (``meta["object"]``); a later ingest skips an object whose URL, ETag, size and
    split match a wholly ingested recording without reading it. Clip digests and recording
    ids are the content digests of local files, so an object and a local copy with the same
    bytes are the same recording.

Errors
    Every failure is a :class:`~engine.errors.SourceError` naming the URL and the fix: no
    credentials, unknown bucket, access denied, an endpoint that does not answer within
    :data:`CONNECT_TIMEOUT_S` seconds (:data:`MAX_ATTEMPTS` tries), an empty prefix.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import dataclass

from engine.errors import InputError, SourceError

#: URL schemes read as object storage; any other ``scheme://`` argument is refused
SCHEMES = ("s3",)
#: bytes per range request (fsspec block size)
BLOCK_SIZE = 4 << 20
#: blocks the decoder's file keeps (LRU): the start of an MP4 survives a visit to its index at
#: the end, so the decoder reads each block once
CACHED_BLOCKS = 4
#: seconds to open a connection / wait for a response before a try fails
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 30.0
#: tries of each request (botocore "standard" retry mode) before the error is reported
MAX_ATTEMPTS = 2
#: the environment that selects credentials and endpoint (a filesystem is made per setting)
_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
        "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
        "AWS_DEFAULT_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_UNSAFE_KEY = re.compile(r"[\x00-\x1f\x7f\\]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_filesystems: dict[tuple, object] = {}
_lock = threading.Lock()


def is_object_url(text: object) -> bool:
    """True when ``text`` is a string of the form ``scheme://...`` (a URL, not a local path)."""
    return isinstance(text, str) and _URL.match(text) is not None


def split_url(url: str) -> tuple[str, str]:
    """(bucket, key or prefix) of ``s3://bucket/key``; an :class:`InputError` for other URLs."""
    scheme = _URL.match(url)
    if scheme is None or scheme.group(1).lower() not in SCHEMES:
        got = scheme.group(1) if scheme else url
        raise InputError(f"{shown(url)}: URL scheme {got!r} is not supported; give s3://BUCKET/"
                         "PREFIX or a local path")
    rest = url[scheme.end():]
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise InputError(f"{shown(url)} names no bucket; give s3://BUCKET/PREFIX")
    return bucket, key


def shown(text: str) -> str:
    """``text`` with control characters escaped, for messages and tables."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def filesystem():
    """The s3fs filesystem for the current AWS environment (one per process and setting)."""
    try:
        import s3fs
    except ImportError as err:
        raise InputError("s3:// sources need the s3 extra: pip install 'clipdex[s3]'") from err
    key = tuple(os.environ.get(name) for name in _ENV)
    with _lock:
        fs = _filesystems.get(key)
        if fs is None:
            fs = s3fs.S3FileSystem(
                skip_instance_cache=True, use_listings_cache=False,
                config_kwargs={"connect_timeout": CONNECT_TIMEOUT_S,
                               "read_timeout": READ_TIMEOUT_S,
                               "retries": {"max_attempts": MAX_ATTEMPTS, "mode": "standard"}})
            _filesystems[key] = fs
    return fs


def _endpoint() -> str:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") \
        or "the default AWS endpoint"


def explain(err: BaseException, url: str) -> SourceError:
    """A :class:`SourceError` naming ``url``, what went wrong and the fix."""
    name = type(err).__name__
    where = shown(url)
    text = str(err)
    if name in ("NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError") \
            or "Unable to locate credentials" in text:
        return SourceError(
            f"{where}: no credentials for object storage ({name}); set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in ~/.aws/credentials")
    if name == "ProfileNotFound":
        return SourceError(f"{where}: {text}; fix AWS_PROFILE or add the profile to "
                           "~/.aws/config")
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError",
                "ReadTimeoutError", "ClientConnectorError", "ServerDisconnectedError") \
            or isinstance(err, ConnectionError | TimeoutError):
        return SourceError(
            f"{where}: cannot reach the object store at {_endpoint()} within "
            f"{CONNECT_TIMEOUT_S:g} s x {MAX_ATTEMPTS} tries ({name}: {text}); check "
            "AWS_ENDPOINT_URL and that the server is up")
    if name == "FileExpired":
        return SourceError(f"{where}: the object changed while it was read (its ETag moved); "
                           "ingest it again once uploads are finished")
    if isinstance(err, FileNotFoundError) and "bucket" in text.lower():
        bucket = split_url(url)[0]
        return SourceError(f"{where}: bucket {bucket!r} does not exist at {_endpoint()}; check "
                           "the bucket name (and AWS_ENDPOINT_URL)")
    if isinstance(err, FileNotFoundError):
        return SourceError(f"{where}: no such object; check the key (listings are taken at the "
                           "start of the job: was it deleted since?)")
    if isinstance(err, PermissionError) or "AccessDenied" in text or "Forbidden" in text:
        return SourceError(f"{where}: access denied ({text}); check the credentials "
                           "(AWS_PROFILE, AWS_ACCESS_KEY_ID) and the bucket's policy")
    return SourceError(f"{where}: object storage error ({name}: {text})")


@dataclass(frozen=True)
class ListedObject:
    """One object of a listing: its URL, key below the listed prefix, and version."""

    url: str
    relative: str  # key below the prefix (an object named by the URL itself: its base name)
    version: str  # "<ETag>:<size>"


def object_version(info: dict) -> str:
    """``<ETag>:<size>`` of an s3fs info dict: what a re-ingest compares."""
    etag = str(info.get("ETag") or info.get("etag") or "").strip('"')
    return f"{etag}:{int(info.get('size') or info.get('Size') or 0)}"


def object_key(url: str, version: str) -> str:
    """The key under which ingest looks up an object's version among finished recordings."""
    return f"{url}\n{version}"


def list_objects(url: str) -> list[ListedObject]:
    """Objects named by ``url`` (an object, or every key under a prefix), in key order.

    Raises :class:`SourceError` (no credentials, unknown bucket, unreachable endpoint, nothing
    under the prefix)."""
    bucket, key = split_url(url)
    fs = filesystem()
    try:
        if key and not key.endswith("/"):
            try:
                info = fs.info(f"{bucket}/{key}")
            except FileNotFoundError:
                info = None
            if info is not None and info.get("type") == "file":
                return [ListedObject(f"s3://{bucket}/{key}", key.rsplit("/", 1)[-1],
                                     object_version(info))]
        prefix = key.rstrip("/")
        found = fs.find(f"{bucket}/{prefix}" if prefix else bucket, detail=True,
                        withdirs=False)
    except Exception as err:  # botocore, aiohttp and fsspec errors: all named by explain()
        raise explain(err, url) from err
    if not found:
        # an unknown bucket lists as empty through some servers: say which it is
        try:
            fs.ls(bucket, detail=False)
        except Exception as err:
            raise explain(err, url) from err
        raise SourceError(f"{shown(url)}: no objects under this prefix; check the prefix "
                          "(keys are case-sensitive)")
    strip = len(f"{bucket}/{prefix}/") if prefix else len(f"{bucket}/")
    out = []
    for name in sorted(found):
        info = found[name]
        if info.get("type", "file") != "file":
            continue
        full_key = name[len(bucket) + 1:]
        out.append(ListedObject(f"s3://{bucket}/{full_key}", name[strip:], object_version(info)))
    return out


def key_problem(relative: str) -> str:
    """Why a key (its part below the listed prefix) is not read, or "" when it is fine."""
    if _UNSAFE_KEY.search(relative):
        return "has control characters or a backslash"
    parts = relative.split("/")
    if any(p == "" for p in parts):
        return "has an empty segment ('//' or a leading '/')"
    if any(p in (".", "..") for p in parts):
        return "has a '.' or '..' segment"
    return ""


class ObjectReader:
    """A seekable binary file over one object for PyAV, hashing the bytes as they stream by.

    ``str()`` is the URL (messages name it). Reads run through fsspec's read-ahead block
    cache. The digest tee follows the furthest byte read contiguously from the start;
    :meth:`digest` reads whatever it has not seen through a second handle."""

    def __init__(self, url: str, version: str = ""):
        self.url = url
        bucket, key = split_url(url)
        self._path = f"{bucket}/{key}"
        fs = filesystem()
        try:
            self._file = fs.open(self._path, "rb", block_size=BLOCK_SIZE, cache_type="blockcache",
                                 cache_options={"maxblocks": CACHED_BLOCKS})
        except Exception as err:
            raise explain(err, url) from err
        self.size = int(self._file.size)
        self.etag = str(self._file.details.get("ETag", "")).strip('"')
        if version and version != f"{self.etag}:{self.size}":
            self._file.close()
            raise SourceError(f"{shown(url)}: the object changed since it was listed (listed "
                              f"{version}, now {self.etag}:{self.size}); ingest it again")
        self._hash = hashlib.blake2b(digest_size=16)
        self._hashed = 0  # bytes [0, _hashed) are in the hash
        self._frozen = False
        self._tee = threading.Lock()
        self._digest = ""

    def __str__(self) -> str:
        return shown(self.url)

    @property
    def version(self) -> str:
        return f"{self.etag}:{self.size}"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._file.tell()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def read(self, n: int = -1) -> bytes:
        start = self._file.tell()
        try:
            data = self._file.read(n)
        except Exception as err:  # PyAV re-raises it from the demuxer: the object fails
            raise explain(err, self.url) from err
        with self._tee:
            end = start + len(data)
            if not self._frozen and start <= self._hashed < end:
                self._hash.update(memoryview(data)[self._hashed - start:])
                self._hashed = end
        return data

    def digest(self) -> str:
        """blake2b-128 of the object's bytes (hex), the same as ``file_digest`` of a copy."""
        if self._digest:
            return self._digest
        with self._tee:
            self._frozen = True
            done = self._hashed
        if done < self.size:
            fs = filesystem()
            try:
                with fs.open(self._path, "rb", block_size=BLOCK_SIZE, cache_type="none") as rest:
                    if str(rest.details.get("ETag", "")).strip('"') != self.etag:
                        raise SourceError(f"{shown(self.url)}: the object changed while it was "
                                          "read; ingest it again once uploads are finished")
                    rest.seek(done)
                    while block := rest.read(BLOCK_SIZE):
                        self._hash.update(block)
            except SourceError:
                raise
            except Exception as err:
                raise explain(err, self.url) from err
        self._digest = self._hash.hexdigest()
        return self._digest

    def close(self) -> None:
        self._file.close()
