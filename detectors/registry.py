"""Detectors by name: built-ins in one table, third parties by entry point.

A third-party package registers ``name = "module:Class"`` under the
``bugbench.detectors`` entry-point group. A *group* name (``keras-baseline``)
expands to several detectors that are reported as separate rows.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "bugbench.detectors"

def load(target: str):
    """The object a ``"module:attr"`` target names (a detector class, for the registry and its entry points)."""
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclasses.dataclass(frozen=True)
class Builtin:
    """A built-in detector: its name, its class, and what the reports call it (rows are listed in table order)."""

    name: str
    target: str  # "module:Class"; the class is also ``bugbench.<Class>``, a Keras callback
    paper_column: str | None = None  # the paper's column for it (CB: the authors' callback, which the faithful is)
    heading: str | None = None  # its column in the paper's Tables VI/VII layout (None: not in that layout)
    stand_in: bool = False  # reports nothing (tests, timing): no table row, no callback

    @property
    def class_name(self) -> str:
        return self.target.partition(":")[2]

    def load(self) -> type:
        return load(self.target)


TABLE: tuple[Builtin, ...] = (
    Builtin("keras-ton", "detectors.keras_baseline:TerminateOnNaNDetector", "TON", "TerminateOnNaN"),
    Builtin("keras-es-loss", "detectors.keras_baseline:EarlyStoppingLossDetector", "ESloss", "EarlyStopping(loss)"),
    Builtin("keras-es-acc", "detectors.keras_baseline:EarlyStoppingAccuracyDetector", "ESacc",
            "EarlyStopping(accuracy)"),
    Builtin("keras-union", "detectors.keras_baseline:KerasUnionDetector", "X", "Keras union"),
    Builtin("layer-trend-faithful", "detectors.layer_trend_faithful:LayerTrendFaithful", "CB", "layer-trend faithful"),
    Builtin("layer-trend", "detectors.layer_trend:LayerTrend", None, "layer-trend default"),
    Builtin("symptoms", "detectors.symptoms:Symptoms"),
    Builtin("training-problems", "detectors.training_problems:TrainingProblems"),
    Builtin("structure", "detectors.structure:Structure"),
    Builtin("diagnose", "detectors.diagnose:Diagnose"),
    Builtin("autotrainer", "detectors.autotrainer:AutoTrainer"),
    Builtin("deepdiagnosis", "detectors.deepdiagnosis:DeepDiagnosis"),
    Builtin("umlaut", "detectors.umlaut:Umlaut"),
    Builtin("null", "detectors.base:NullDetector", stand_in=True),
)
BUILTINS: dict[str, str] = {b.name: b.target for b in TABLE}

GROUPS: dict[str, tuple[str, ...]] = {
    "keras-baseline": ("keras-ton", "keras-es-loss", "keras-es-acc", "keras-union"),
    # Other tools as their authors released them, replayed on the same traces.
    "peers": ("layer-trend-faithful", "autotrainer", "deepdiagnosis", "umlaut"),
}

DEFAULT = ("keras-baseline", "layer-trend-faithful", "layer-trend", "symptoms", "training-problems", "structure",
           "diagnose", "autotrainer", "deepdiagnosis", "umlaut")

_extra: dict[str, str] = {}


def register(name: str, target: str) -> None:
    """Register ``name`` -> ``"module:Class"`` at run time (tests, notebooks)."""
    origins = _origins()
    if name in origins:
        raise ValueError(f"detector '{name}' is already registered by {origins[name]}; {target} clashes")
    _extra[name] = target
    _entry_points.cache_clear()


def available() -> dict[str, str]:
    """Every detector name with where it comes from."""
    return {name: target for name, (target, _) in _origins_full().items()}


def expand(names) -> list[str]:
    """Group names replaced by their members, unknown names refused with hints."""
    known = available()
    out: list[str] = []
    for name in names:
        members = GROUPS.get(name, (name,))
        for member in members:
            if member not in known:
                close = difflib.get_close_matches(member, [*known, *GROUPS], n=3, cutoff=0.5)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise KeyError(f"unknown detector '{member}'{hint}")
            if member not in out:
                out.append(member)
    return out


def create(name: str, **params):
    """A new detector instance by registered name."""
    target = available().get(name)
    if target is None:
        expand([name])  # raises with suggestions
    detector = load(target)(**params)
    detector.name = name
    return detector


@functools.lru_cache(maxsize=1)
def _entry_points() -> tuple:
    """Installed plug-ins, read once per process (scanning every distribution is slow)."""
    return tuple((ep.name, ep.value, ep.dist.name if ep.dist else "?") for ep in entry_points(group=ENTRY_POINT_GROUP))


def _origins_full() -> dict[str, tuple[str, str]]:
    table = {name: (target, "built-in") for name, target in BUILTINS.items()}
    for name, value, dist in _entry_points():
        if name in table:
            raise ValueError(f"detector '{name}' from {value} clashes with {table[name][0]}")
        table[name] = (value, f"entry point of {dist}")
    for name, target in _extra.items():
        table[name] = (target, "registered at run time")
    return table


def _origins() -> dict[str, str]:
    return {name: f"{target} ({origin})" for name, (target, origin) in _origins_full().items()}
