"""Fault injection for the crash and concurrency tests: named points in the write paths.

``CLIPDEX_FAULT="stage:n"`` makes the n-th pass through :func:`fault_point` ``stage`` SIGKILL
this process (crash tests); ``"stage:sleep=S"`` sleeps S seconds at each pass (concurrency
tests). Read once at import; unset, a fault point costs one truth test.
"""

from __future__ import annotations

import os
import time

_FAULT = os.environ.get("CLIPDEX_FAULT", "")
_fault_counts: dict[str, int] = {}


def fault_point(stage: str) -> None:
    """A named point where a crash test may kill the process (see ``_FAULT``)."""
    if _FAULT:
        _fault_hit(stage)


def _fault_hit(stage: str) -> None:
    want, _, n = _FAULT.partition(":")
    if want != stage:
        return
    if n.startswith("sleep="):  # "stage:sleep=SECONDS": a slow job, for concurrency tests
        time.sleep(float(n[6:]))
        return
    _fault_counts[stage] = _fault_counts.get(stage, 0) + 1
    if _fault_counts[stage] == int(n or 1):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
