"""The trace of one training run: what every detector replays.

Per training batch: loss and metrics of that batch, Keras' running logs, the
learning rate, wall time, and per layer the STATS of each STAGE. Per epoch: the
epoch logs (validation included). Saved as one compressed ``.npz`` with the JSON
metadata inside. No TensorFlow here: detectors and reports read traces cheaply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
from collections.abc import Iterator

import numpy as np
import pydantic

# weights/weight_grad/update are the layer's kernel after the step, its gradient,
# and the change the optimizer made to it in this step.
STAGES = ("output", "weights", "weight_grad", "output_grad", "update")
STATS = ("mean", "std", "min", "max", "zero_frac", "nan", "inf")
FORMAT = 1


@dataclasses.dataclass(frozen=True)
class Budget:
    """The fit's planned length: what "the end of training" means for a verdict on the final step.

    One producer per origin (``harness.training.train.budget``, the live callback's ``params``, the toy traces),
    one reading of "final" (``is_final``) for replay and live alike.
    """

    epochs: int | None = None
    steps_per_epoch: int | None = None  # None when Keras could not tell (a generator without a length)
    batch_size: int | None = None

    @classmethod
    def of(cls, value) -> Budget:
        """A Budget from a trace's or record's ``budget`` (a dict, a Budget, or None for unknown)."""
        if isinstance(value, Budget):
            return value
        value = value or {}
        return cls(*(_count(value.get(k)) for k in ("epochs", "steps_per_epoch", "batch_size")))

    @property
    def total_steps(self) -> int:
        """Optimizer steps in the whole budget; 0 when either factor is unknown."""
        return (self.epochs or 0) * (self.steps_per_epoch or 0)

    def is_final(self, epoch: int, batch: int | None = None) -> bool:
        """Whether ``epoch`` (and, for a batch end, ``batch`` of it) is the budget's last moment."""
        if self.epochs is None or epoch != self.epochs - 1:
            return False
        return batch is None or (self.steps_per_epoch is not None and batch + 1 == self.steps_per_epoch)

    def to_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


def _count(value) -> int | None:
    return None if value is None else int(value)


class TraceMeta(pydantic.BaseModel):
    """The JSON metadata every trace carries, checked where a trace is made and where one is read.

    The first block is what ``TraceRecorder.finish`` writes (a detector may rely on it); the rest is what the
    harness's training adds (``harness.training.train``), absent from a live callback's own traces and from toy
    traces. ``facts`` is ``harness.facts``' dict, versioned by its own ``version``.
    """

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    format: int
    layers: list[dict]
    value_names: list[str]
    log_names: list[str]
    epoch_log_names: list[str]
    budget: dict = {}
    metric_directions: dict[str, str] = {}
    facts: dict = {}
    case: str | None = None
    variant: str | None = None
    seed: int | None = None
    semantics: str | None = None
    data: dict | None = None
    versions: dict | None = None
    fit_seconds: float | None = None
    stats: str | None = None

    @pydantic.field_validator("budget")
    @classmethod
    def _budget_counts(cls, value: dict) -> dict:
        Budget.of(value)  # raises on a count that is not a number
        unknown = set(value) - {f.name for f in dataclasses.fields(Budget)}
        if unknown:
            raise ValueError(f"unknown budget fields {sorted(unknown)}")
        return value


def checked_meta(meta: dict, where: str) -> dict:
    """``meta`` when it is a valid :class:`TraceMeta`; a ValueError naming ``where`` and the field otherwise."""
    try:
        TraceMeta.model_validate(meta)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "meta"
        raise ValueError(f"{where}: trace metadata field '{field}': {first['msg']}") from None
    return meta


class TraceRecorder:
    """Accumulates batches and epochs during a fit, then freezes into a Trace."""

    def __init__(self, layer_names: list[str], value_names: list[str]):
        self.layer_names = list(layer_names)
        self.value_names = list(value_names)
        self._batches: list[tuple] = []
        self._epochs: list[tuple] = []
        self._mask = None

    def add_batch(self, epoch, batch, seconds, stats, mask, values, logs) -> None:
        self._mask = mask if self._mask is None else self._mask & mask
        self._batches.append((epoch, batch, seconds, stats, values, dict(logs)))

    def add_epoch(self, epoch, seconds, logs) -> None:
        self._epochs.append((epoch, seconds, dict(logs)))

    @property
    def n_batches(self) -> int:
        return len(self._batches)

    def batch_at(self, row: int) -> tuple[int, int]:
        """(epoch, batch) of the ``row``-th batch recorded."""
        return self._batches[row][0], self._batches[row][1]

    def batch_step_at(self, row: int, index: int, final: bool) -> Step:
        """The ``row``-th batch recorded as a Step, for detectors watching live."""
        epoch, batch, seconds, stats, values, logs = self._batches[row]
        return batch_step(index, epoch, batch, seconds, dict(logs), dict(zip(self.value_names, map(float, values))),
                          stats, self._mask, final)

    def last_epoch_step(self, index: int, final: bool) -> Step:
        epoch, seconds, logs = self._epochs[-1]
        return Step("epoch", index, int(epoch), None, float(seconds), dict(logs), {}, None, final, self._mask)

    def finish(self, meta: dict) -> Trace:
        n_layers = len(self.layer_names)
        b = self._batches
        batch_log_names = sorted({k for *_, logs in b for k in logs})
        epoch_log_names = sorted({k for *_, logs in self._epochs for k in logs})
        arrays = {
            "epoch": np.array([r[0] for r in b], np.int32),
            "batch": np.array([r[1] for r in b], np.int32),
            "seconds": np.array([r[2] for r in b], np.float64),
            "stats": np.array([r[3] for r in b], np.float32).reshape(len(b), n_layers, len(STAGES), len(STATS)),
            "values": np.array([r[4] for r in b], np.float64).reshape(len(b), len(self.value_names)),
            "logs": _table([r[5] for r in b], batch_log_names),
            "mask": np.asarray(self._mask if self._mask is not None else np.zeros((n_layers, len(STAGES)), bool)),
            "epoch_index": np.array([r[0] for r in self._epochs], np.int32),
            "epoch_seconds": np.array([r[1] for r in self._epochs], np.float64),
            "epoch_logs": _table([r[2] for r in self._epochs], epoch_log_names),
        }
        meta = dict(meta, format=FORMAT, layers=meta.get("layers") or [{"name": n} for n in self.layer_names],
                    value_names=self.value_names, log_names=batch_log_names, epoch_log_names=epoch_log_names)
        return Trace(checked_meta(meta, "the trace being recorded"), arrays)


def _table(rows: list[dict], names: list[str]) -> np.ndarray:
    out = np.full((len(rows), len(names)), np.nan)
    for i, row in enumerate(rows):
        for j, name in enumerate(names):
            if name in row:
                out[i, j] = float(row[name])
    return out


@dataclasses.dataclass
class Step:
    """One moment of training a detector observes: a batch end or an epoch end."""

    kind: str  # "batch" or "epoch"
    index: int  # position in the replay order
    epoch: int
    batch: int | None  # None at an epoch end
    seconds: float
    logs: dict  # what Keras passed to callbacks at this moment
    values: dict  # the batch's own loss, metrics and learning rate (batch steps only)
    stats: np.ndarray | None  # [layer, stage, stat] (batch steps only)
    final: bool  # the last moment of the full budget
    mask: np.ndarray | None = None  # [layer, stage]: does the stage exist for the layer

    def stat(self, stage: str, stat: str) -> np.ndarray:
        """One statistic of one stage for every layer (NaN where the stage does not apply)."""
        return self.stats[:, STAGES.index(stage), STATS.index(stat)]

    def applies(self, stage: str) -> np.ndarray:
        """[layer] booleans: which layers have ``stage`` (Flatten has no weights, ...)."""
        return self.mask[:, STAGES.index(stage)]


def batch_step(index, epoch, batch, seconds, logs: dict, values: dict, stats, mask, final) -> Step:
    """A batch-end Step; statistics of stages a layer lacks read as NaN."""
    return Step("batch", index, int(epoch), int(batch), float(seconds), logs, values,
                np.where(mask[:, :, None], stats, np.nan), bool(final), mask)


class Trace:
    def __init__(self, meta: dict, arrays: dict):
        self.meta = meta
        self.arrays = arrays

    @property
    def layers(self) -> list[dict]:
        return self.meta["layers"]

    @property
    def n_batches(self) -> int:
        return len(self.arrays["epoch"])

    @property
    def budget(self) -> Budget:
        """The planned budget; a trace whose budget does not say its epochs ends at its last recorded one."""
        budget = Budget.of(self.meta.get("budget"))
        if budget.epochs is None:
            budget = dataclasses.replace(budget, epochs=len(self.arrays["epoch_index"]))
        return budget

    def applies(self, layer: int, stage: str) -> bool:
        """Whether ``stage`` exists for ``layer`` (no weights on Flatten, ...)."""
        return bool(self.arrays["mask"][layer, STAGES.index(stage)])

    def series(self, stage: str, stat: str) -> np.ndarray:
        """[batch, layer] array of one statistic; NaN where the stage does not apply."""
        out = self.arrays["stats"][:, :, STAGES.index(stage), STATS.index(stat)].astype(np.float64)
        out[:, ~self.arrays["mask"][:, STAGES.index(stage)]] = np.nan
        return out

    def value(self, name: str) -> np.ndarray:
        return self.arrays["values"][:, self.meta["value_names"].index(name)]

    def steps(self) -> Iterator[Step]:
        """Batch and epoch-end steps in the order training produced them."""
        a, meta = self.arrays, self.meta
        mask = a["mask"]
        epochs = list(a["epoch_index"])
        budget = self.budget
        i = index = 0
        for e_pos, epoch in enumerate(epochs):
            while i < self.n_batches and a["epoch"][i] == epoch:
                final = budget.is_final(int(epoch), int(a["batch"][i]))
                yield batch_step(index, epoch, a["batch"][i], a["seconds"][i], _row(a["logs"][i], meta["log_names"]),
                                 _row(a["values"][i], meta["value_names"]), a["stats"][i], mask, final)
                i += 1
                index += 1
            final = budget.is_final(int(epoch))
            yield Step("epoch", index, int(epoch), None, float(a["epoch_seconds"][e_pos]),
                       _row(a["epoch_logs"][e_pos], meta["epoch_log_names"]), {}, None, final=final, mask=mask)
            index += 1

    # -- storage ---------------------------------------------------------------

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez_compressed(buf, meta=np.array(json.dumps(self.meta, default=_jsonable)), **self.arrays)
        return buf.getvalue()

    def save(self, path: str) -> None:
        """Write atomically: a reader never sees half a trace."""
        write_atomic(path, self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "trace") -> Trace:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            arrays = {k: z[k] for k in z.files if k != "meta"}
        if meta.get("format") != FORMAT:
            raise ValueError(f"{where}: trace format {meta.get('format')} is not {FORMAT}")
        return cls(checked_meta(meta, where), arrays)

    @classmethod
    def load(cls, path: str) -> Trace:
        with open(path, "rb") as fh:
            return cls.from_bytes(fh.read(), path)


def write_atomic(path: str, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename over ``path``."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:  # disk full, a read-only folder, an interrupt: leave no half-written file
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def _row(values: np.ndarray, names: list[str]) -> dict:
    return {n: float(v) for n, v in zip(names, values)}


def _jsonable(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
