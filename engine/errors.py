"""Errors clipdex raises. Every message names the bad value and the fix."""


class ClipdexError(Exception):
    """Base class: an error a user can act on. The CLI prints its message and exits non-zero."""


class InputError(ClipdexError, ValueError):
    """Bad input data: a corrupt or unreadable source, NaN telemetry, a wrong shape."""


class SourceError(InputError):
    """A source (video file, image folder, zarr clip) could not be read or decoded."""


class RegionError(ClipdexError):
    """Unknown region, missing or invalid regions.toml, or an action the policy forbids."""


class PolicyError(RegionError):
    """A cross-region operation that the export policy does not allow."""


class StoreError(ClipdexError):
    """The region store is missing, locked, corrupt, or from a newer clipdex version."""


class LockedError(StoreError):
    """Another process holds the region's writer lock."""


class NotFoundError(ClipdexError, KeyError):
    """A clip id, region or file that does not exist."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""
