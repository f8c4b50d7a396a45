"""The clipdex home and its ``regions.toml``: which regions exist, where their data lives, and
what each region's export policy lets leave it.

``regions.toml`` (in the home folder) looks like::

    [regions.us-west]
    jurisdiction = "US"
    path = "regions/us-west"            # relative to the home, or absolute (a mount in-country)
    export_fields = ["ids", "scores", "hashes"]
    export_to = ["eu-central"]          # regions allowed to receive them; ["*"] = any region

A missing or invalid policy is an error, never an open door: a region without
``export_fields`` exports nothing. Region folders are disjoint: every load resolves each folder
(``..`` and symlinks included) and refuses two regions whose folders are the same or nested.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import RegionError
from engine.ids import validate_region_name

#: what may leave a region, each granted by name (``egress`` checks every one that crosses):
#: clip ids (and drive/vehicle ids), scores (rarity, similarity, match strength), keyframe
#: hashes, embeddings, thumbnails, frames, telemetry, source paths, relations between clips
#: (duplicate/partial pairs, offsets, groups) and aggregate counts (clips, hours, pairs)
EXPORT_FIELDS = ("ids", "scores", "hashes", "embeddings", "thumbnails", "frames", "telemetry",
                 "source_paths", "relations", "counts")
REGIONS_FILE = "regions.toml"


@dataclass(frozen=True)
class Region:
    name: str
    path: Path  # absolute
    jurisdiction: str = ""
    export_fields: tuple[str, ...] = ()
    export_to: tuple[str, ...] = ()
    #: Dask schedulers trusted to process this region's clips (``tcp://HOST:PORT``); a job
    #: refuses any other scheduler. A LocalCluster started by the job itself is always allowed
    schedulers: tuple[str, ...] = ()

    def allows(self, field_name: str, to_region: str) -> bool:
        """True when ``field_name`` may leave this region for ``to_region``."""
        if field_name not in EXPORT_FIELDS:
            raise RegionError(f"unknown export field {field_name!r}; known: {', '.join(EXPORT_FIELDS)}")
        if to_region == self.name:
            return True
        return field_name in self.export_fields and ("*" in self.export_to or to_region in self.export_to)


@dataclass
class Home:
    """A clipdex home folder: ``regions.toml`` plus (by default) one folder per region."""

    path: Path
    regions: dict[str, Region] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str | os.PathLike | None = None, *, create: bool = False) -> Home:
        home = Path(path if path is not None else default_home()).expanduser().resolve()
        cfg = home / REGIONS_FILE
        if not cfg.exists():
            if not create:
                raise RegionError(
                    f"no clipdex home at {home} (missing {REGIONS_FILE}); create one with "
                    f"`clipdex regions add REGION --home {home}` or run `clipdex demo --home {home}`"
                )
            home.mkdir(parents=True, exist_ok=True)
            obj = cls(home)
            obj.save()
            return obj
        regions = _parse_regions(cfg, home)
        check_disjoint(regions, cfg)
        return cls(home, regions)

    def region(self, name: str) -> Region:
        validate_region_name(name)
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none yet"
            raise RegionError(
                f"unknown region {name!r} in {self.path / REGIONS_FILE} (known: {known}); "
                f"add it with `clipdex regions add {name} --home {self.path}`"
            ) from None

    def add_region(
        self,
        name: str,
        *,
        path: str | os.PathLike | None = None,
        jurisdiction: str = "",
        export_fields: tuple[str, ...] = (),
        export_to: tuple[str, ...] = (),
    ) -> Region:
        validate_region_name(name)
        if name in self.regions:
            raise RegionError(f"region {name!r} already exists in {self.path / REGIONS_FILE}")
        for f in export_fields:
            if f not in EXPORT_FIELDS:
                raise RegionError(f"unknown export field {f!r}; choose from {', '.join(EXPORT_FIELDS)}")
        rpath = Path(path).expanduser() if path else Path("regions") / name
        absolute = rpath if rpath.is_absolute() else self.path / rpath
        absolute = absolute.resolve()
        for other in self.regions.values():
            if _nested(absolute, other.path):
                raise RegionError(
                    f"region folder {absolute} overlaps region {other.name!r} at {other.path}; "
                    "each region needs its own folder"
                )
        region = Region(name, absolute, jurisdiction, tuple(export_fields), tuple(export_to))
        self.regions[name] = region
        absolute.mkdir(parents=True, exist_ok=True)
        self.save()
        return region

    def set_policy(self, name: str, *, export_fields: tuple[str, ...],
                   export_to: tuple[str, ...]) -> Region:
        """Replace region ``name``'s export policy (the fields that may leave it and the regions,
        or ``"*"``, that may receive them) and save ``regions.toml``; its data is untouched."""
        import dataclasses

        region = self.region(name)
        for f in export_fields:
            if f not in EXPORT_FIELDS:
                raise RegionError(f"unknown export field {f!r}; choose from {', '.join(EXPORT_FIELDS)}")
        for t in export_to:
            if t != "*":
                validate_region_name(t)
        if export_fields and not export_to:
            raise RegionError(f"region {name!r}: --export {','.join(export_fields)} needs --to: the regions "
                              "that may receive them (comma-separated) or '*' for any place")
        updated = dataclasses.replace(region, export_fields=tuple(dict.fromkeys(export_fields)),
                                      export_to=tuple(dict.fromkeys(export_to)))
        self.regions[name] = updated
        self.save()
        return updated

    def save(self) -> None:
        lines = ["# clipdex regions and export policies (see docs/sovereignty.md)", ""]
        for r in self.regions.values():
            try:
                shown = r.path.relative_to(self.path)
            except ValueError:
                shown = r.path
            lines += [
                f"[regions.{r.name}]",
                f"jurisdiction = {_toml_str(r.jurisdiction)}",
                f"path = {_toml_str(str(shown))}",
                f"export_fields = [{', '.join(_toml_str(f) for f in r.export_fields)}]",
                f"export_to = [{', '.join(_toml_str(t) for t in r.export_to)}]",
                *([f"schedulers = [{', '.join(_toml_str(t) for t in r.schedulers)}]"]
                  if r.schedulers else []),
                "",
            ]
        tmp = self.path / (REGIONS_FILE + ".tmp")
        tmp.write_text("\n".join(lines), encoding="utf-8")
        os.replace(tmp, self.path / REGIONS_FILE)


def default_home() -> Path:
    env = os.environ.get("CLIPDEX_HOME")
    return Path(env) if env else Path.home() / ".clipdex"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _nested(a: Path, b: Path) -> bool:
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def check_disjoint(regions: dict[str, Region], cfg: Path) -> None:
    """Refuse region folders that are the same or nested once ``..`` and symlinks are resolved
    (``Region.path`` is already resolved): one region's data would be another's."""
    items = sorted(regions.values(), key=lambda r: r.name)
    for i, a in enumerate(items):
        for b in items[i + 1:]:
            if _nested(a.path, b.path):
                raise RegionError(
                    f"{cfg}: regions {a.name!r} ({a.path}) and {b.name!r} ({b.path}) share a folder "
                    "(the same, or one inside the other, after resolving '..' and symlinks); give "
                    "each region its own folder in regions.toml"
                )


def _parse_regions(cfg: Path, home: Path) -> dict[str, Region]:
    try:
        data = tomllib.loads(cfg.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise RegionError(f"{cfg} is not valid TOML ({err}); fix or delete the file") from err
    table = data.get("regions", {})
    if not isinstance(table, dict):
        raise RegionError(f"{cfg}: [regions] must be a table of region names")
    regions: dict[str, Region] = {}
    for name, spec in table.items():
        validate_region_name(name)
        if not isinstance(spec, dict) or "path" not in spec:
            raise RegionError(f"{cfg}: region {name!r} needs a 'path'")
        fields = spec.get("export_fields", [])
        dests = spec.get("export_to", [])
        if not isinstance(fields, list) or any(f not in EXPORT_FIELDS for f in fields):
            raise RegionError(
                f"{cfg}: region {name!r} has invalid export_fields {fields!r}; "
                f"use a list from {', '.join(EXPORT_FIELDS)}"
            )
        if not isinstance(dests, list) or not all(isinstance(d, str) for d in dests):
            raise RegionError(f"{cfg}: region {name!r} export_to must be a list of region names or '*'")
        schedulers = spec.get("schedulers", [])
        if not isinstance(schedulers, list) or not all(isinstance(x, str) for x in schedulers):
            raise RegionError(f"{cfg}: region {name!r} schedulers must be a list of addresses "
                              "such as \"tcp://10.0.0.5:8786\"")
        rpath = Path(str(spec["path"])).expanduser()
        absolute = (rpath if rpath.is_absolute() else home / rpath).resolve()
        regions[name] = Region(
            name, absolute, str(spec.get("jurisdiction", "")), tuple(fields), tuple(dests),
            tuple(schedulers),
        )
    return regions
