"""The results folder's one owner: where a unit's record lives, and how records are written, read and pruned.

``<results>/runs/<case>/<variant>-seed<k>.json``, one per unit, written
atomically and validated (``harness.running.records``); the tables beside
``runs/`` are the reporting stage's. Everything else asks this class for a path.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile

import pydantic

from harness.errors import WriteFailed
from harness.running.records import RecordFormatError, StoredFileError, UnitId, UnitRecord, check_format, read_json
from harness.trace import write_atomic

_TEMPORARY = re.compile(r"\.tmp(\d+)$")  # write_atomic's name for a file being written, by the writer's pid


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # another user's process: alive
        return False
    return False


class ResultUnreadable(Exception):
    """A record that is missing, truncated, not JSON, or not a unit record."""


class ResultsDir:
    def __init__(self, root: str = "results"):
        self.root = root
        self.runs = os.path.join(root, "runs")

    def path(self, case: str, variant: str, seed: int) -> str:
        return os.path.join(self.runs, case, f"{variant}-seed{seed}.json")

    def path_for(self, unit: UnitId) -> str:
        return self.path(unit.case, unit.variant, unit.seed)

    def exists(self) -> bool:
        return os.path.isdir(self.runs)

    def cases(self) -> list[str]:
        if not self.exists():
            return []
        return sorted(d for d in os.listdir(self.runs) if os.path.isdir(os.path.join(self.runs, d)))

    def write(self, record: dict | UnitRecord) -> UnitRecord:
        """Validate and write one unit's record atomically (temp file, then rename), where its own case, variant
        and seed put it; the record as a reader will get it back."""
        if isinstance(record, UnitRecord):
            record = record.model_dump(exclude_unset=True)
        # The file keeps the fields as given, not the model's dump: a default added to the model later
        # must not appear in records written before it.
        record = dict(record, format=UnitRecord.model_fields["format"].default)
        valid = UnitRecord.model_validate(record)
        path = self.path(valid.case.id, valid.variant, valid.seed)
        try:
            write_atomic(path, (json.dumps(record, indent=1, sort_keys=True, default=str) + "\n").encode())
        except OSError as exc:
            raise WriteFailed(path, exc) from None
        return valid

    def read(self, path: str) -> UnitRecord:
        """One record; ResultUnreadable (naming the file) when it cannot be read, RecordFormatError when old."""
        try:
            data = read_json(path)
        except StoredFileError as exc:
            raise ResultUnreadable(f"{path}: unreadable result file ({exc})") from None
        if not isinstance(data, dict) or "case" not in data:
            raise ResultUnreadable(f"{path}: not a unit record")
        check_format(data, path)
        try:
            return UnitRecord.model_validate(data)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ResultUnreadable(f"{path}: not a valid unit record ({where}: {first['msg']})") from None

    def records(self) -> list[UnitRecord]:
        """Every record under ``runs/``; an unreadable one is named on stderr and left out, an old format stops."""
        out = []
        for case in self.cases():
            folder = os.path.join(self.runs, case)
            for name in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
                try:
                    out.append(self.read(os.path.join(folder, name)))
                except ResultUnreadable as exc:
                    print(f"bugbench: skipping {exc}", file=sys.stderr)
        return out

    def stale(self, units: list[UnitId]) -> list[str]:
        """Result files no unit of ``units`` writes (deleted cases, other cases, fewer seeds)."""
        keep = {self.path_for(u) for u in units}
        return [os.path.join(folder, name) for folder, _, files in os.walk(self.runs) for name in sorted(files)
                if os.path.join(folder, name) not in keep]

    def remove_orphans(self) -> list[str]:
        """Remove the half-written files of writers that are gone (a run killed mid-write); return their paths."""
        gone = [os.path.join(folder, name) for folder, _, names in os.walk(self.runs) for name in names
                if (m := _TEMPORARY.search(name)) and _gone(int(m.group(1)))]
        for path in gone:
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
        return gone

    def remove(self, paths: list[str]) -> None:
        """Remove result files (``stale`` ones) and the folders they leave empty."""
        for path in paths:
            os.remove(path)
        for folder, _, _ in sorted(os.walk(self.runs), reverse=True):
            if folder != self.runs and not os.listdir(folder):
                os.rmdir(folder)

    def unwritable(self) -> str | None:
        """Why result files cannot be written here (None when they can): checked before any training."""
        try:
            os.makedirs(self.runs, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.runs, prefix=".probe"):
                pass
        except OSError as exc:
            return exc.strerror or str(exc)
        return None


__all__ = ["RecordFormatError", "ResultUnreadable", "ResultsDir"]
