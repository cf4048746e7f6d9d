"""Content-addressed store of trained units: a rerun trains only what changed.

A unit's key hashes everything that decides its trace: the fully resolved
variant spec, the seed, the loss-semantics override, what computes its
statistics (``BUGBENCH_STATS``), the library versions, and the source of the
code that builds, feeds, trains and probes it (``harness.provenance``: edit a
data generator, the probe or the trace format and the units it shapes are
trained again).
Editing a case changes its specs and so its keys; every other case is found
in the store and only re-scored. The CPU is recorded with every unit, not
keyed: a dask worker's CPU is not known when the key is made.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import sys
import zipfile
from importlib import metadata
from typing import Literal

import pydantic

from harness.errors import WriteFailed
from harness.provenance import TRACE_SOURCES, source_hash
from harness.running.records import StoredFileError, UnitId, read_json
from harness.trace import write_atomic

_UNIT_FILE = re.compile(r"^(?P<variant>[A-Za-z0-9_]+)-seed(?P<seed>\d+)-(?P<key>[0-9a-f]{16})\.")


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


@functools.lru_cache(maxsize=1)
def library_versions() -> dict:
    """Versions that change numerics, read without importing TensorFlow."""
    out = {}
    for dist in ("tensorflow", "tensorflow-cpu", "keras", "numpy", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def code_hash() -> str:
    return source_hash(*TRACE_SOURCES)


def _portable(spec: dict | None) -> dict | None:
    """The spec with a data file named by its content hash and base name, not by where this clone lies."""
    params = ((spec or {}).get("data") or {}).get("params") or {}
    if not params.get("sha256") or not isinstance(params.get("path"), str):
        return spec
    data = dict(spec["data"], params=dict(params, path=os.path.basename(params["path"])))
    return dict(spec, data=data)


def unit_key(unit: dict) -> str:
    payload = {k: unit.get(k) for k in ("spec", "seed", "semantics", "stats")}
    payload["spec"] = _portable(payload["spec"])
    payload.update(versions=library_versions(), code=code_hash())
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class Unit(pydantic.BaseModel):
    """One training to do: a case's variant under a seed, with its resolved spec. Frozen, so its key, a hash of its
    content, cannot go stale."""

    model_config = pydantic.ConfigDict(frozen=True, extra="forbid")

    case: str
    variant: Literal["buggy", "patched"]
    seed: int = pydantic.Field(ge=0)
    spec: dict
    semantics: str | None = None
    stats: str | None = None  # what computes the statistics (named: a dask worker's environment may differ)
    trust_code: bool = False  # the run's consent to run the case's own code (file.py); not part of the key

    @functools.cached_property
    def key(self) -> str:
        return unit_key(self.model_dump())

    @property
    def id(self) -> UnitId:
        return UnitId(self.case, self.variant, self.seed, self.key)

    def work(self) -> dict:
        """What a worker trains: the unit as the plain dict ``harness.training.train_unit`` reads."""
        return {**self.model_dump(), "key": self.key}


class UnitStore:
    """``<root>/units/<case>/<variant>-seed<k>-<key>.{json,npz}``; writes are atomic."""

    def __init__(self, root: str):
        self.root = root
        self._by_key: dict[tuple[int, str], list[str]] | None = None  # (seed, key) -> stems, read on first need

    def _stem(self, unit: UnitId) -> str:
        return os.path.join(self.root, "units", unit.case, f"{unit.variant}-seed{unit.seed}-{unit.key}")

    def trace_path(self, unit: UnitId) -> str:
        return self._stem(unit) + ".npz"

    def get(self, unit: UnitId) -> dict | None:
        """The stored training record of ``unit``, or None (also when half-written).

        A unit of another case with the same key is the same training (a mutant's patched variant is its
        healthy program): it is found too, and its trace and remembered findings are shared.
        """
        found = self._read(self._stem(unit))
        if found is None:
            found = next(filter(None, map(self._read, self._same_key(unit))), None)
        return found

    def _same_key(self, unit: UnitId) -> list[str]:
        """Stems of the records stored under ``unit``'s seed and key, in any case: the store is listed once
        (a cold run misses every unit), then kept current by ``put``; files written by other means are
        seen by the next ``UnitStore`` (a run holds the cache lock, so nothing else writes meanwhile)."""
        if self._by_key is None:
            self._by_key = {}
            for path, *_, seed, key in self.files():
                if path.endswith(".json") and not path.endswith(".findings.json"):
                    self._by_key.setdefault((seed, key), []).append(path[: -len(".json")])
        return self._by_key.get((unit.seed, unit.key), [])

    def _read(self, stem: str) -> dict | None:
        try:
            record = read_json(stem + ".json")
        except StoredFileError as exc:
            if os.path.lexists(stem + ".json"):  # absent is the common case: a unit not trained yet
                _warn(f"bugbench: {stem}.json: {exc}; training the unit again")
            return None
        if not isinstance(record, dict) or not isinstance(record.get("status"), str):
            _warn(f"bugbench: {stem}.json is not a unit record; training the unit again")
            return None
        # The trace lies beside the record, wherever the store has been moved or mounted.
        record["trace"] = stem + ".npz"
        if record.get("status") == "ok" and not zipfile.is_zipfile(record["trace"]):
            return None  # missing, truncated or not a trace at all: train the unit again
        return record

    def put(self, unit: UnitId, record: dict) -> dict:
        """Store a worker's record; its trace bytes become a file beside it (WriteFailed when they cannot)."""
        try:
            return self._put(unit, dict(record))
        except OSError as exc:
            raise WriteFailed(self._stem(unit), exc) from None

    def _put(self, unit: UnitId, record: dict) -> dict:
        data = record.pop("trace_npz", None)
        if data is not None:
            record["trace"] = self.trace_path(unit)
            write_atomic(record["trace"], data)  # trace first: a record never points at nothing
            with contextlib.suppress(FileNotFoundError):  # findings of an older trace of this unit
                os.remove(self._stem(unit) + ".findings.json")
        if record.get("status") == "ok":
            write_atomic(self._stem(unit) + ".json", json.dumps(record, default=str).encode())
            if self._by_key is not None:
                self._by_key.setdefault((unit.seed, unit.key), []).append(self._stem(unit))
        return record

    def files(self):
        """(path, case, variant, seed, key) of every stored file; the name is ``<variant>-seed<k>-<key>.<ext>``."""
        base = os.path.join(self.root, "units")
        for case in sorted(os.listdir(base)) if os.path.isdir(base) else []:
            for name in sorted(os.listdir(os.path.join(base, case))):
                match = _UNIT_FILE.match(name)
                if match and ".tmp" not in name:  # half-written files are temporary_files()
                    yield (os.path.join(base, case, name), case, match["variant"], int(match["seed"]), match["key"])

    def prune(self, keep: set[str], dry_run: bool = False) -> tuple[int, int]:
        """Delete every stored file whose key is not in ``keep``, and half-written temporary files
        (a write that died: disk full, a kill); (files, bytes) removed."""
        count = size = 0
        doomed = [path for path, *_, key in self.files() if key not in keep] + list(self.temporary_files())
        for path in doomed:
            count, size = count + 1, size + os.path.getsize(path)
            if not dry_run:
                os.remove(path)
        return count, size

    def temporary_files(self):
        base = os.path.join(self.root, "units")
        for folder, _, names in os.walk(base):
            yield from (os.path.join(folder, n) for n in names if ".tmp" in n)
