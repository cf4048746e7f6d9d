"""Remembered findings: a detector is replayed on a stored trace only when it changed.

Beside each stored unit, ``<unit>.findings.json`` maps detector name -> its
findings and the detector's *fingerprint*: its name, parameters and version,
and a hash of the source files it is made of (its module's folder, the
``detectors`` package, and the trace and facts readers it is fed by: ``harness.provenance``).
Editing a detector's code, or registering a different
class under the same name, changes the fingerprint and so replays it; nothing
else does. A missing or unreadable file only means "replay".
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import sys

import pydantic

from harness.provenance import DETECTOR_SOURCES, source_hash
from harness.running.records import FindingsEntry, StoredFileError, read_json
from harness.trace import write_atomic

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        print(message, file=sys.stderr)


LAYERS = "__layers__"  # the trace's layer classes, stored beside the findings


def fingerprint(detector) -> str:
    """What decides a detector's findings on a given trace, hashed."""
    cls = type(detector)
    try:
        own = os.path.dirname(os.path.abspath(inspect.getsourcefile(cls)))
    except TypeError:  # defined interactively: no file to hash, never reuse
        return ""
    params = {k: v for k, v in sorted(vars(detector).items()) if not k.startswith("_") and k != "findings"}
    payload = [cls.__module__, cls.__qualname__, getattr(detector, "name", ""), getattr(detector, "version", ""),
               repr(params), source_hash(*DETECTOR_SOURCES), source_hash(own)]
    return hashlib.sha256(json.dumps(payload).encode()).hexdigest()[:16]


class FindingsStore:
    """Findings per detector for one stored unit, keyed by the detector's fingerprint."""

    def __init__(self, trace_path: str):
        self.path = trace_path[: -len(".npz")] + ".findings.json" if trace_path.endswith(".npz") else None
        self._entries = self._read()
        self._dirty = False

    def _read(self) -> dict:
        if not self.path:
            return {}
        try:
            data = read_json(self.path)
        except StoredFileError:
            return {}
        return data if isinstance(data, dict) else {}  # not ours (a list, null): replay, and rewrite it

    def get(self, name: str, print_: str) -> dict | None:
        """The stored entry under this fingerprint; None (replay) when absent, stale or malformed."""
        entry = self._entries.get(name)
        if not entry or not print_ or entry.get("fingerprint") != print_:
            return None
        if name != LAYERS:
            try:
                FindingsEntry.model_validate(entry)
            except pydantic.ValidationError:
                return None
        return entry

    def put(self, name: str, entry: dict) -> None:
        self._entries[name] = entry
        self._dirty = True

    def save(self) -> None:
        """Remember the entries; a file that cannot be written only means replaying next time (said once)."""
        if self.path and self._dirty:
            try:
                write_atomic(self.path, json.dumps(self._entries).encode())
            except OSError as exc:
                _warn_once(f"bugbench: cannot remember findings in {os.path.dirname(self.path)} "
                           f"({exc.strerror or exc}); they are replayed next time")
