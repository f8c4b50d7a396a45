"""Find sources (video files, image-sequence folders, zarr clip stores) under given paths.

Rules
    - Arguments may be files, directories (walked recursively, in sorted order) or globs
      (``*``, ``?``, ``[`` with ``**`` for any depth).
    - Video: extensions :data:`VIDEO_EXTENSIONS`. Image sequence: a directory holding >= 1
      jpg/jpeg/png file and no video (its sub-directories are walked too). ``*.zarr``
      directory: a zarr clip store, not descended into.
    - Hidden files and directories (name starts with ``.``) are skipped.
    - Symlinks: one whose target leaves the source tree (the ``root``, else the argument
      directory) is never followed and gives an error item; a broken one gives an error item.
      The same holds for every file a source reads: a telemetry sidecar, an image or the frame
      index of an image folder, or any file or folder inside a zarr store that resolves outside
      the tree turns its source into an error item (nothing of it is read).
      Symlinks inside the tree are followed only with ``follow_symlinks=True`` (their targets
      are found by the walk anyway); each real file is listed once. A directory reached twice
      (a loop through links or bind mounts) gives an error item and is not walked again.
    - ``s3://bucket/prefix`` arguments are listed on object storage and classified by the same
      rules (:mod:`engine.sources.remote`); their items carry the URL as ``path``.
    - Problems are returned as items of kind ``"error"`` with a ``message``, so a batch job
      records them and goes on. A directory symlink that points at a folder holding it (a loop)
      is such a problem, followed or not.
    - Paths passed over are listed, with their reason, in ``skipped`` when the caller gives a
      list: hidden names that would be sources (``.x.mp4``, ``...mp4``), symlinks inside the
      tree that are not followed, images beside videos (not an image sequence), and files that
      are no source or sidecar (``notes.txt``).

Clip ids (``clip_id_base``)
    The path relative to ``root`` (else to the argument directory, or the key below an
    ``s3://`` prefix; a file argument uses its own name) without the file extension (``.zarr``
    dropped too), separators replaced by ``__`` and other characters outside ``[A-Za-z0-9._-]``
    by ``_``. Longer than :data:`MAX_BASE_LEN` (room for a ``-0000`` split suffix) -> cut and
    ``-<hash8>`` of the relative path appended. Colliding ids: the one that needed no rewriting keeps it, the
    others get ``-<hash8>`` of their relative path (content-independent, stable).
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from engine.errors import InputError
from engine.ids import MAX_CLIP_ID_LEN, validate_clip_id
from engine.sources.remote import is_object_url

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts", ".gif")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
TELEMETRY_SIDECARS = (".telemetry.csv", ".csv", ".npy", ".npz")
#: files read beside sources (sidecars, frame indexes): passed over without a word
COMPANION_EXTENSIONS = (".csv", ".npy", ".npz", ".json")
#: an image folder's frame index files (:data:`engine.sources.images.INDEX_FILES`)
IMAGE_INDEX_FILES = ("index.csv", "frames.json")
MAX_BASE_LEN = MAX_CLIP_ID_LEN - 5  # leaves room for "-0000"
_BAD_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_GLOB_CHARS = re.compile(r"[*?\[]")
_MANGLED_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/[^/]")  # str(Path("s3://b/k")) == "s3:/b/k"

Kind = Literal["video", "images", "zarr", "error"]


@dataclass(frozen=True)
class SourceItem:
    """One source to read. ``path`` is a local path, or for an object on object storage its
    URL as a ``str`` (:mod:`engine.sources.remote`); ``version`` is then the object's
    ``<ETag>:<size>`` at listing."""

    kind: Kind
    path: Path | str
    clip_id_base: str
    telemetry: Path | None = None
    message: str = ""  # why, for kind "error"
    version: str = ""

    @property
    def remote(self) -> bool:
        """True for an object on object storage (``path`` is its URL)."""
        return isinstance(self.path, str)


def _short_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogateescape"), digest_size=4).hexdigest()


def clip_id_from_relative(rel: str) -> str:
    """Sanitised id for a relative path (extension already removed), before collisions."""
    parts = [p for p in re.split(r"[\\/]+", rel) if p not in ("", ".")]
    clip_id = "__".join(_BAD_CHARS.sub("_", part) for part in parts) or "clip"
    if clip_id in (".", ".."):
        clip_id = clip_id.replace(".", "_")
    if len(clip_id) > MAX_BASE_LEN:
        clip_id = clip_id[: MAX_BASE_LEN - 9] + "-" + _short_hash(rel)
    return clip_id


def _error(path: Path, message: str) -> SourceItem:
    return SourceItem("error", path, "", None, message)


def _sidecar(video: Path) -> Path | None:
    stem = video.with_suffix("")
    for suffix in TELEMETRY_SIDECARS:
        candidate = stem.with_name(stem.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _folder_telemetry(folder: Path) -> Path | None:
    for name in ("telemetry.csv", "telemetry.npy", "telemetry.npz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _store_entries(store: Path) -> list[Path]:
    """Every file and folder inside a zarr store (links listed, not followed): what reading
    its clips may open."""
    out = []
    for folder, dirs, files in os.walk(store):
        out += [Path(folder) / name for name in sorted(dirs + files)]
    return out


def _outside_tree(files: list[Path], tree: Path) -> list[Path]:
    """The files of ``files`` that resolve (through symlinks and ``..``) outside ``tree``."""
    tree_real = os.path.realpath(tree)
    return [f for f in files if os.path.commonpath([os.path.realpath(f), tree_real]) != tree_real]


class _Walker:
    def __init__(self, follow_symlinks: bool, follow_links: bool = False):
        self.follow_symlinks = follow_symlinks or follow_links
        self.follow_links = follow_links  # links may leave the source tree
        self.skipped: list[tuple[Path, str]] = []
        self.items: list[tuple[SourceItem, Path]] = []  # (item, tree root for its id)
        self.seen_files: set[str] = set()
        self.seen_dirs: set[tuple[int, int]] = set()

    def add(self, kind: Kind, path: Path, tree: Path) -> None:
        real = os.path.realpath(path)
        if real in self.seen_files:
            return
        self.seen_files.add(real)
        if kind == "video":
            telemetry = _sidecar(path)
        elif kind == "images":
            telemetry = _folder_telemetry(path)
        else:
            telemetry = None
        reads = [path, *([telemetry] if telemetry else [])]
        if kind == "images":
            reads += sorted(p for p in path.iterdir()
                            if p.suffix.lower() in IMAGE_EXTENSIONS or p.name in IMAGE_INDEX_FILES)
        elif kind == "zarr":
            reads += _store_entries(path)
        leaving = _outside_tree(reads, tree)
        if leaving and not self.follow_links:  # every file read lies in the tree unless allowed
            self.error(path, f"{path}: {leaving[0]} links to {os.path.realpath(leaving[0])}, outside the "
                             f"source tree {os.path.realpath(tree)}; nothing of {path.name} was read (copy "
                             "the file into the tree, remove the link, or pass --follow-links)")
            return
        self.items.append((SourceItem(kind, path, "", telemetry), tree))

    def error(self, path: Path, message: str) -> None:
        self.items.append((_error(path, message), path))

    def link_ok(self, path: Path, tree_real: str) -> bool:
        """For a symlink: False (and an error item) if broken or leaving the tree."""
        target = os.path.realpath(path)
        if not os.path.exists(target):
            self.error(path, f"{path}: broken symlink (to {os.readlink(path)}); fix or remove it")
            return False
        if os.path.commonpath([target, tree_real]) != tree_real and not self.follow_links:
            self.error(
                path,
                f"{path}: symlink to {target} leaves the source tree {tree_real}; not followed "
                "(copy the data into the tree, pass the target itself as an input, or pass "
                "--follow-links)",
            )
            return False
        if os.path.isdir(target) and os.path.commonpath([target, os.path.realpath(path.parent)]) == target:
            self.error(path, f"{path}: directory symlink loop (it points at {target}, a folder that holds "
                             "it); not followed: remove the link")
            return False
        if not self.follow_symlinks:
            self.skipped.append((path, f"symlink inside the source tree (to {target}); not followed: its "
                                       "target is ingested from its own path"))
        return self.follow_symlinks

    def walk(self, top: Path, tree: Path) -> None:
        tree_real = os.path.realpath(tree)
        stack = [top]
        while stack:
            folder = stack.pop()
            try:
                info = os.stat(folder)
            except OSError as err:
                self.error(folder, f"cannot read directory {folder}: {err}; check permissions")
                continue
            key = (info.st_dev, info.st_ino)
            if key in self.seen_dirs:
                self.error(folder, f"{folder}: directory loop (already walked as "
                                   f"{os.path.realpath(folder)}); remove the looping link")
                continue
            self.seen_dirs.add(key)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as err:
                self.error(folder, f"cannot list directory {folder}: {err}; check permissions")
                continue
            videos, images, subdirs = [], [], []
            for entry in entries:
                path = Path(entry.path)
                if entry.name.startswith("."):
                    if path.suffix.lower() in (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS, ".zarr"):
                        plain = entry.name.lstrip(".")
                        plain = plain if "." in plain else "clip" + path.suffix
                        self.skipped.append((path, f"hidden name (starts with '.'): not read; rename it (e.g. "
                                                   f"{plain}) to ingest it"))
                    continue
                if entry.is_symlink() and not self.link_ok(path, tree_real):
                    continue
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                suffix = path.suffix.lower()
                if is_dir:
                    if suffix == ".zarr":
                        self.add("zarr", path, tree)
                    else:
                        subdirs.append(path)
                elif suffix in VIDEO_EXTENSIONS:
                    videos.append(path)
                elif suffix in IMAGE_EXTENSIONS:
                    images.append(path)
                elif suffix not in COMPANION_EXTENSIONS:
                    self.skipped.append((path, f"not a video ({', '.join(VIDEO_EXTENSIONS)}), an image "
                                               "folder or a .zarr store"))
            for video in videos:
                self.add("video", video, tree)
            if images and not videos:
                self.add("images", folder, tree)
            elif images:
                self.skipped.append((folder, f"{len(images)} images beside videos are not read as an image "
                                             "sequence: move them into a folder of their own"))
            stack.extend(reversed(subdirs))  # sorted order, depth first

    def objects(self, url: str) -> None:
        """The objects under an ``s3://`` URL, classified like the files of a local walk."""
        from engine.sources import remote

        try:
            listed = remote.list_objects(url)
        except InputError as err:
            self.items.append((_error(url, str(err)), ""))
            return
        if len(listed) == 1 and listed[0].url == url and \
                PurePosixPath(url).suffix.lower() not in VIDEO_EXTENSIONS:
            self.items.append((_error(url, f"{remote.shown(url)}: extension "
                                           f"{PurePosixPath(url).suffix!r} is not a video "
                                           f"({', '.join(VIDEO_EXTENSIONS)}); leave it out"), ""))
            return
        folders: dict[str, list] = {}
        stores: set[str] = set()
        for obj in listed:
            where = remote.shown(obj.url)
            problem = remote.key_problem(obj.relative)
            if problem:
                self.items.append((_error(where, f"{where}: the object key {problem}; it is not "
                                                   "read (keys are names, never paths): rename "
                                                   "the object"), ""))
                continue
            parts = obj.relative.split("/")
            store = next((i for i, p in enumerate(parts[:-1]) if p.lower().endswith(".zarr")), None)
            hidden = next((i for i, p in enumerate(parts) if p.startswith(".")), None)
            if hidden is not None and (store is None or hidden < store):
                name = parts[hidden]
                if hidden == len(parts) - 1 and PurePosixPath(name).suffix.lower() in \
                        (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS):
                    self.skipped.append((where, "hidden name (starts with '.'): not read; rename "
                                                "it to ingest it"))
                continue
            if store is not None:
                prefix = obj.url[: len(obj.url) - len("/".join(parts[store + 1:])) - 1]
                if prefix not in stores:
                    stores.add(prefix)
                    self.items.append((_error(prefix, f"{remote.shown(prefix)}: zarr clip stores "
                                              "are read from local disk only; copy the store to "
                                              "a local folder and ingest the copy"), ""))
                continue
            folders.setdefault("/".join(parts[:-1]), []).append(obj)
        for objs in folders.values():
            folder_url = objs[0].url[: len(objs[0].url) - len(PurePosixPath(objs[0].relative).name) - 1]
            names = {PurePosixPath(o.relative).name for o in objs}
            videos = [o for o in objs if PurePosixPath(o.relative).suffix.lower() in VIDEO_EXTENSIONS]
            images = [o for o in objs if PurePosixPath(o.relative).suffix.lower() in IMAGE_EXTENSIONS]
            for obj in videos:
                rel = PurePosixPath(obj.relative)
                item = SourceItem("video", obj.url, "", None, "", obj.version)
                self.items.append((item, str(rel.with_suffix(""))))
                for suffix in TELEMETRY_SIDECARS:
                    if rel.stem + suffix in names:
                        self.skipped.append((remote.shown(obj.url[: -len(rel.name)] + rel.stem + suffix),
                                             "telemetry sidecars on object storage are not read: "
                                             f"{rel.name} is ingested without telemetry; copy both "
                                             "to a local folder to use it"))
                        break
            if images and not videos:
                self.items.append((_error(folder_url, f"{remote.shown(folder_url)}: image folders are read from "
                                               "local disk only; copy the folder to a local "
                                               "folder and ingest the copy"), ""))
            elif images:
                self.skipped.append((remote.shown(folder_url), f"{len(images)} images beside "
                                     "videos are not read as an image sequence: move them into a "
                                     "folder of their own"))
            for obj in objs:
                suffix = PurePosixPath(obj.relative).suffix.lower()
                if suffix not in (*VIDEO_EXTENSIONS, *IMAGE_EXTENSIONS, *COMPANION_EXTENSIONS):
                    self.skipped.append((remote.shown(obj.url), f"not a video "
                                         f"({', '.join(VIDEO_EXTENSIONS)})"))

    def argument(self, path: Path, tree: Path) -> None:
        if path.is_symlink():
            tree_real = os.path.realpath(tree)
            target = os.path.realpath(path)
            if not os.path.exists(target):
                self.error(path, f"{path}: broken symlink; fix or remove it")
                return
            if path != tree and os.path.commonpath([target, tree_real]) != tree_real \
                    and not self.follow_links:
                self.error(path, f"{path}: symlink to {target} leaves the source tree "
                                 f"{tree_real}; pass the target itself")
                return
        if not path.exists():
            self.error(path, f"{path} does not exist; check the path (globs need quotes)")
        elif path.is_dir():
            if path.suffix.lower() == ".zarr":
                self.add("zarr", path, tree)
            else:
                self.walk(path, tree)
        elif path.suffix.lower() in VIDEO_EXTENSIONS:
            self.add("video", path, tree)
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            self.error(path, f"{path} is a single image; pass its folder as an image sequence")
        else:
            self.error(
                path,
                f"{path}: extension {path.suffix!r} is not a video ({', '.join(VIDEO_EXTENSIONS)})"
                ", image folder or .zarr store; rename it or leave it out",
            )


def _glob_base(pattern: str) -> Path:
    parts = Path(pattern).parts
    base = []
    for part in parts:
        if _GLOB_CHARS.search(part):
            break
        base.append(part)
    return Path(*base) if base else Path(".")


def discover(
    paths: list[Path | str] | Path | str,
    *,
    root: Path | str | None = None,
    follow_symlinks: bool = False,
    skipped: list[tuple[Path, str]] | None = None,
    follow_links: bool = False,
) -> list[SourceItem]:
    """Source items (and error items) for ``paths``; see the module doc for the rules. Paths
    passed over are appended to ``skipped`` as (path, reason) when it is given. With
    ``follow_links`` every link is followed, also out of the source tree (the user vouches for
    its targets: ``--follow-links``)."""
    if isinstance(paths, str | Path):
        paths = [paths]
    root_path = Path(root) if root is not None else None
    walker = _Walker(follow_symlinks, follow_links)
    for raw in paths:
        text = str(raw)
        if is_object_url(text):
            walker.objects(text)
            continue
        if isinstance(raw, Path) and _MANGLED_URL.match(text) and not raw.exists():
            walker.error(raw, f"{text} looks like a URL that lost a '/' by being made a path; "
                              "pass s3:// URLs as strings (s3://BUCKET/PREFIX)")
            continue
        if _GLOB_CHARS.search(text) and not Path(text).exists():
            matches = sorted(glob.glob(text, recursive=True))
            base = _glob_base(text)
            if not matches:
                walker.error(Path(text), f"glob {text!r} matches nothing; check the pattern")
            for match in matches:
                parts = Path(match).relative_to(base).parts
                if any(p.startswith(".") or p.lower().endswith(".zarr") for p in parts[:-1]) \
                        or parts[-1].startswith("."):
                    continue
                walker.argument(Path(match), root_path or base)
            continue
        path = Path(text)
        tree = root_path or (path if path.is_dir() else path.parent)
        walker.argument(path, tree)
    if skipped is not None:
        skipped.extend(walker.skipped)
    return _assign_ids(walker.items, root_path)


def _relative(path: Path, tree: Path, is_file: bool) -> str:
    try:
        rel = path.absolute().relative_to(tree.absolute())
    except ValueError:
        rel = Path(path.name)
    if rel == Path("."):
        rel = Path(path.absolute().name)
    if is_file or rel.suffix.lower() == ".zarr":
        rel = rel.with_suffix("")
    return rel.as_posix()


def _assign_ids(pairs: list[tuple[SourceItem, Path]], root: Path | None) -> list[SourceItem]:
    out: list[SourceItem] = []
    rels: list[str] = []
    for item, tree in pairs:
        if item.kind == "error":
            rels.append("")
            continue
        # an object's tree is its key below the listed prefix, extension removed
        rels.append(tree if isinstance(tree, str) else _relative(item.path, tree, item.kind == "video"))
    ids = [clip_id_from_relative(rel) if rel else "" for rel in rels]
    groups: dict[str, list[int]] = {}
    for i, clip_id in enumerate(ids):
        if clip_id:
            groups.setdefault(clip_id, []).append(i)
    taken = set(groups)
    for clip_id, members in groups.items():
        if len(members) < 2:
            continue
        keeper = next((i for i in members if rels[i].replace("/", "__") == clip_id), None)
        for i in members:
            if i == keeper:
                continue
            new_id = clip_id[: MAX_BASE_LEN - 9] + "-" + _short_hash(rels[i])
            while new_id in taken:
                new_id = clip_id[: MAX_BASE_LEN - 9] + "-" + _short_hash(new_id)
            taken.add(new_id)
            ids[i] = new_id
    for (item, _), clip_id in zip(pairs, ids, strict=True):
        if item.kind == "error":
            out.append(item)
        else:
            out.append(SourceItem(item.kind, item.path, validate_clip_id(clip_id),
                                  item.telemetry, item.message, item.version))
    return out
