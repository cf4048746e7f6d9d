"""Typed shape of a case file. Pure pydantic: no Keras import, so it is cheap.

Keras names (layers, optimizers, losses, metrics, initializers) are checked
separately by ``harness.training.preflight`` because resolving them needs Keras.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_serializer, model_validator

# DeepCrime-style fault codes used in `truth.faults[].code`.
FAULT_CODES = {
    "ACH": "change the activation of layer k",
    "AAL": "add the missing activation at layer k",
    "LCH": "change the loss function",
    "HLR": "change the learning rate",
    "OCH": "change the optimizer",
    "CPP": "change the data preprocessing (inputs or labels)",
    "HBS": "change the batch size",
    "HNE": "change the number of epochs",
    "WCI": "change the weight initialisation of layer k",
    "LAD": "add a layer",
    "LRM": "remove a layer",
    "LSZ": "change the size of layer k",
    "REG": "add regularisation",
    "RRG": "remove the misplaced regulariser of layer k",
    "NONE": "no fault",
}
LAYER_CODES = {"ACH", "AAL", "WCI", "LSZ", "RRG"}

SYMPTOMS = (
    "nan_loss",  # loss becomes NaN or Inf
    "accuracy_at_most",  # final accuracy <= value
    "loss_at_least",  # final loss >= value
    "loss_ratio_at_least",  # final loss >= value x the patched variant's final loss
    "accuracy_gap_at_least",  # patched accuracy - buggy accuracy >= value
    "overfit_gap_at_least",  # final val_loss - final (training) loss >= value
    "none",  # the case has no symptom (negative control)
)

PREPROCESS_STEPS = ("standardize", "minmax", "scale", "one_hot", "reshape", "cast", "binarize", "shuffle_labels",
                    "subsample")
TASKS = ("binary", "multiclass", "multilabel", "regression")
# valid: a buggy/patched pair that reproduces; no_bug: the original was no bug (a negative control); mislabelled,
# questionable: kept with a measured reason; healthy: a single healthy program (the zoo), no patch, trained once
# as its patched variant, on which any error is a false alarm; equivalent: a generated mutant its base did not
# measurably beat (kept out of detection rates).
STATUSES = ("valid", "no_bug", "mislabelled", "questionable", "healthy", "equivalent")

MAX_EPOCHS = 5_000  # a reduced budget; raising it needs `allow_large_budget`
MAX_BATCH = 1_000_000  # rows per batch: beyond any data set a CPU case trains on
MAX_STEPS_PER_EXECUTION = 100_000


def _whole_number(value: Any) -> Any:
    """YAML's ``true`` is no count (pydantic would read it as 1), nor is 2.5 or 1e12 meant as one."""
    if isinstance(value, bool):
        raise ValueError("expected a whole number, got a boolean")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(f"expected a whole number, got {value}")
    return value


Count = Annotated[int, BeforeValidator(_whole_number)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _single_key(value: Any, what: str) -> Any:
    if not (isinstance(value, dict) and len(value) == 1):
        raise ValueError(f"each {what} is a mapping with exactly one key, e.g. {{Dense: {{units: 8}}}}")
    (name, kwargs), = value.items()
    if kwargs is None:
        value = {name: {}}
    elif not isinstance(kwargs, dict):
        raise ValueError(f"{what} '{name}' takes a mapping of arguments, got {type(kwargs).__name__}")
    return value


class Source(Strict):
    kind: Literal["stackoverflow", "github", "synthetic", "other"]
    ref: str = Field(description="post id, or owner/repo")
    url: str | None = None
    fix: str | None = Field(None, description="where the fix comes from: answer, commit hash")
    title: str | None = None
    collection: str | None = Field(None, description="the public collection or study the pair was taken from "
                                   "(e.g. islam-fse19, humbatova-icse20, denchmark); none: found directly")

    @field_validator("ref", mode="before")
    @classmethod
    def _ref_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) else v


class Split(Strict):
    split: float | None = Field(None, gt=0, lt=1)
    n: Count | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_of(self) -> Split:
        if (self.split is None) == (self.n is None):
            raise ValueError("give exactly one of 'split' (fraction) or 'n' (rows)")
        return self


class Validation(Split):
    """Rows held out for validation. ``rows: random`` draws them from ``data.seed``; ``rows: last`` takes the last
    rows as the arrays stand, as Keras' ``validation_split`` does (before fit's shuffle): data sorted by class
    then validates on one class, the fault that spelling exists for."""

    rows: Literal["random", "last"] = "random"

    @model_serializer(mode="wrap")
    def _omit_random_rows(self, handler):
        out = handler(self)  # the default is left out: a spec that does not choose keeps its cache key
        if out.get("rows") == "random":
            out.pop("rows")
        return out


class Test(Split):
    """Rows held out before any preprocessing that only the training data gets (label noise, deleted rows):
    neither training nor validation sees them; drawn by their own seed, so a program and its mutants share them."""

    seed: int = 1


class Data(Strict):
    source: str
    params: dict[str, Any] = {}
    seed: int = 0
    preprocess: list[dict[str, Any]] = []
    validation: Validation | None = None
    test: Test | None = None

    @model_serializer(mode="wrap")
    def _omit_no_test(self, handler):
        out = handler(self)  # left out when absent: a case without a test split keeps its spec as it was
        if out.get("test") is None:
            out.pop("test", None)
        return out

    @field_validator("preprocess")
    @classmethod
    def _steps(cls, steps: list) -> list:
        out = []
        for step in steps:
            _single_key(step, "preprocessing step")
            name = next(iter(step))
            if name not in PREPROCESS_STEPS:
                raise ValueError(f"unknown preprocessing step '{name}' (known: {', '.join(PREPROCESS_STEPS)})")
            # YAML 1.1 reads a bare `on:` key as the boolean true; `on: y` is what was meant.
            args = {("on" if k is True else k): v for k, v in (step[name] or {}).items()}
            out.append({name: args})
        return out


# Layers that read from disk or run code: a case's data comes from its data section only.
FORBIDDEN_LAYERS = {"TFSMLayer": "loads a saved model from a path", "Lambda": "runs arbitrary code"}


# Keras layer arguments that read a file when given a string (a lookup's vocabulary, TF-IDF weights, ...):
# a case gives their values inline, as a list.
FILE_ARGUMENTS = ("vocabulary", "idf_weights", "filepath", "path", "file_path")


def _no_paths(value: Any, where: str) -> None:
    """Refuse a layer argument that names a file: any string of a file-taking argument (``.env`` is a path
    too), and anything else that looks like a path."""
    if isinstance(value, str) and ("/" in value or "\\" in value or value.startswith("~")
                                   or where.rsplit(".", 1)[-1] in FILE_ARGUMENTS):
        raise ValueError(f"{where}: a string here names a file; layer arguments may not name files (give the "
                         "values as a list; data comes from the case's data section)")
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, inner in items:
        _no_paths(inner, f"{where}.{key}")


class Model(Strict):
    input_shape: list[int] = Field(min_length=1)
    layers: list[dict[str, Any]] = Field(min_length=1)

    @field_validator("layers")
    @classmethod
    def _layers(cls, layers: list) -> list:
        out = [_single_key(layer, "layer") for layer in layers]
        for i, layer in enumerate(out):
            (name, kwargs), = layer.items()
            if name in FORBIDDEN_LAYERS:
                raise ValueError(f"layer {i} ({name}) is not allowed: it {FORBIDDEN_LAYERS[name]}")
            _no_paths(kwargs, f"layer {i} ({name})")
        return out


class Compile(Strict):
    loss: str | dict[str, Any]
    optimizer: str | dict[str, Any]
    metrics: list[str | dict[str, Any]] = []
    # Training steps per TensorFlow call: the same updates in the same order, with far less
    # per-step Python; for budgets of many tiny batches (the probe still keeps every batch).
    steps_per_execution: Count = Field(default=1, gt=0, le=MAX_STEPS_PER_EXECUTION)

    @model_serializer(mode="wrap")
    def _omit_default_execution(self, handler):
        # Left out at its default, so adding this key kept every existing unit's cache key.
        out = handler(self)
        if out.get("steps_per_execution") == 1:
            del out["steps_per_execution"]
        return out


# Fit callbacks a case may name: the ones that change how a program trains, with no file or code of their own.
FIT_CALLBACKS = ("ReduceLROnPlateau", "EarlyStopping", "LearningRateScheduler")
# LearningRateScheduler takes a schedule by name (a case holds no code): its arguments, and what it does per epoch.
SCHEDULES = {"exponential": ("rate",), "step": ("factor", "every")}


class Fit(Strict):
    epochs: Count = Field(gt=0)
    batch_size: Count = Field(gt=0, le=MAX_BATCH)
    shuffle: bool = True
    callbacks: list[dict[str, Any]] = []
    # fit's class_weight: each class index's weight in the training loss (Keras weights neither validation
    # losses nor ``metrics`` by it)
    class_weight: dict[int, Annotated[float, Field(ge=0)]] | None = None

    @field_validator("callbacks")
    @classmethod
    def _callbacks(cls, callbacks: list) -> list:
        out = [_single_key(c, "fit callback") for c in callbacks]
        for c in out:
            (name, kwargs), = c.items()
            if name not in FIT_CALLBACKS:
                raise ValueError(f"fit callback '{name}' is not one a case may use "
                                 f"(allowed: {', '.join(FIT_CALLBACKS)})")
            if name == "LearningRateScheduler":
                schedule = kwargs.get("schedule")
                if schedule not in SCHEDULES:
                    raise ValueError(f"LearningRateScheduler needs schedule: one of {', '.join(SCHEDULES)}")
                extra = set(kwargs) - {"schedule", "verbose", *SCHEDULES[schedule]}
                if extra:
                    raise ValueError(f"schedule '{schedule}' takes {', '.join(SCHEDULES[schedule])}, not "
                                     f"{', '.join(sorted(extra))}")
        return out

    @model_serializer(mode="wrap")
    def _omit_no_callbacks(self, handler):
        out = handler(self)  # left out when empty: a spec without callbacks or weights keeps its cache key
        for key in ("callbacks", "class_weight"):
            if not out.get(key):
                out.pop(key, None)
        return out


class Edit(Strict):
    set: str | None = None
    to: Any = None
    delete: str | None = None
    insert: str | None = None
    value: Any = None

    @model_validator(mode="after")
    def _one_op(self) -> Edit:
        ops = [k for k in ("set", "delete", "insert") if getattr(self, k) is not None]
        if len(ops) != 1:
            raise ValueError("an edit has exactly one of 'set' (with 'to'), 'delete', or 'insert' (with 'value')")
        return self


class Fault(Strict):
    code: str
    layer: int | None = Field(None, ge=0)
    note: str | None = None

    @model_validator(mode="after")
    def _known(self) -> Fault:
        if self.code not in FAULT_CODES:
            raise ValueError(f"unknown fault code '{self.code}' (known: {', '.join(FAULT_CODES)})")
        if self.code in LAYER_CODES and self.layer is None:
            raise ValueError(f"fault code {self.code} needs the 'layer' index it applies to")
        return self


class Truth(Strict):
    faults: list[Fault] = Field(min_length=1)


class Symptom(Strict):
    kind: Literal[SYMPTOMS]  # type: ignore[valid-type]
    value: float | None = None
    on: Literal["train", "test"] = "train"  # test: judged on the held-out rows (data.test), as mutants are killed

    @model_serializer(mode="wrap")
    def _omit_train(self, handler):
        out = handler(self)
        if out.get("on") == "train":
            del out["on"]
        return out

    @model_validator(mode="after")
    def _value(self) -> Symptom:
        needs_value = self.kind not in ("nan_loss", "none")
        if needs_value and self.value is None:
            raise ValueError(f"symptom '{self.kind}' needs a 'value'")
        return self


class Original(Strict):
    epochs: int | None = None
    batch_size: int | None = None
    data: str | None = None
    loss_before: float | None = None
    acc_before: float | None = None
    loss_after: float | None = None
    acc_after: float | None = None


class Spec(Strict):
    """What one variant trains: the part of a case that a patch may edit."""

    data: Data
    model: Model
    compile: Compile
    fit: Fit
    semantics: Literal["keras2", "keras3"] = "keras2"


class Case(Spec):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    version: int = 1
    title: str
    source: Source
    task: Literal[TASKS]  # type: ignore[valid-type]
    status: Literal[STATUSES] = "valid"  # type: ignore[valid-type]
    status_reason: str | None = None
    patch: list[Edit] = []
    truth: Truth
    symptom: Symptom
    original: Original = Original()
    allow_large_budget: bool = False
    paper: dict[str, Any] | None = None
    generated: dict[str, Any] | None = None  # a mutant's operator, base program and kill decision
    notes: list[str] = []

    @model_validator(mode="after")
    def _consistent(self) -> Case:
        if self.status not in ("valid", "healthy") and not self.status_reason:
            raise ValueError(f"status '{self.status}' needs a one-line 'status_reason'")
        if self.status == "healthy":
            if self.patch or [f.code for f in self.truth.faults] != ["NONE"] or self.symptom.kind != "none":
                raise ValueError("a healthy program has no patch, truth faults [{code: NONE}] and symptom "
                                 "{kind: none}")
        elif not self.patch:
            raise ValueError("patch: at least one edit (only a 'healthy' program has none)")
        if self.fit.epochs > MAX_EPOCHS and not self.allow_large_budget:
            raise ValueError(
                f"fit.epochs={self.fit.epochs} exceeds {MAX_EPOCHS}; set 'allow_large_budget: true' if you mean it"
            )
        n_layers = len(self.model.layers)
        for fault in self.truth.faults:
            if fault.layer is not None and fault.layer >= n_layers:
                raise ValueError(f"truth names layer {fault.layer} but the buggy model has {n_layers} layers")
        return self


SPEC_KEYS = tuple(Spec.model_fields)


def field_names() -> set[str]:
    """Every key the schema knows, for 'did you mean' suggestions."""
    names: set[str] = set()
    todo = [Case]
    while todo:
        model = todo.pop()
        for name, field in model.model_fields.items():
            names.add(name)
            ann = field.annotation
            for sub in (ann, *getattr(ann, "__args__", ())):
                if isinstance(sub, type) and issubclass(sub, BaseModel) and sub not in todo:
                    todo.append(sub)
    return names
