"""Helpers of the tests of download sessions against the media server: a session's
cookies file, and the check that a rate-limit paused only the session it hit."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def cookie_file(path: Path, sid: str) -> Path:
    """A Netscape cookies file with the SID cookie the demo server tells sessions apart by."""
    exp = int(time.time()) + 86400
    path.write_text(f"# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t{exp}\tSID\t{sid}\n")
    return path


def assert_paused_only(attempts: Sequence[Any], log: Sequence[Any], *, session: str, sid: str, other_sid: str) -> None:
    """The rate-limited attempts are all ``session``'s and uncounted; after the server first
    refused ``sid``, that session asked for nothing more while ``other_sid`` went on."""
    limited = [a for a in attempts if a.reason == "rate-limited"]
    assert limited and {a.session for a in limited} == {session} and not any(a.counted for a in limited)
    first_refusal = min(r.time for r in log if r.session == f"sid:{sid}" and r.fault == "rate-limited")
    assert not [r for r in log if r.session == f"sid:{sid}" and r.kind == "watch" and r.time > first_refusal + 1.0]
    assert [r for r in log if r.session == f"sid:{other_sid}" and r.kind == "watch" and r.time > first_refusal]
