"""What the tables call things, in one place: the methods compared and every column legend.

``METHODS`` are the detectors the reports know, from the registry's one table
(``detectors.registry.TABLE``): the paper's column for each (where the paper
published cells for it), its heading in the paper's Tables VI/VII layout, and
the order rows are listed in. A detector missing there is still reported, after
these, by name. A finding code's words come from the class that emits it.
"""

from __future__ import annotations

import dataclasses
import functools

from detectors import registry


@dataclasses.dataclass(frozen=True)
class Method:
    detector: str
    paper_column: str | None  # the paper's column (CB: the authors' callback, which the faithful mode is)
    heading: str | None  # its column in the paper's Tables VI/VII layout (None: not in that layout)


METHODS = tuple(Method(b.name, b.paper_column, b.heading) for b in registry.TABLE if not b.stand_in)
PAPER_COLUMN = {m.detector: m.paper_column for m in METHODS if m.paper_column}


def detector_order(name: str):
    """Rows in METHODS order; detectors it does not list (plug-ins) after them, by name."""
    order = [m.detector for m in METHODS]
    return (order.index(name) if name in order else len(order), name)


# Published totals on the paper's 40 cases: DeepLocalize (ICSE'21) and DeepDiagnosis (ICSE'22, same 40), with the
# detector that is our run of the same tool as released (AUTOTRAINER and UMLAUT published no counts on these 40).
PUBLISHED = {"DeepLocalize": (34, 21, "layer-trend-faithful"), "DeepDiagnosis": (35, 29, "deepdiagnosis")}


# The project's goals for its recommended detector on the paper's valid cases (met or not, the table says): 23 of
# the 24 with a healthy fix separated, with no more false alarms than before the learns-but-worse verdicts.
TARGET_DETECTOR = "diagnose"
TARGETS = {"separates": (">=", 23), "localized": (">=", 20), "suggested_fix": (">=", 18), "false_alarms": ("<=", 2)}


CASE_LEGEND = (
    "Cell: buggy variant / patched variant. `Y e3 b12 1.4s` = first finding at epoch 3, batch 12, 1.4 s "
    "into training; `N` = nothing reported; `FA` = a finding on the patched model (false alarm); `ok` = "
    "silent on the patched model; `ERR` = the run failed. `~` marks a majority over seeds that disagreed. "
    "`paper` = the paper's published identified-the-bug cell for that method (X is the union only for GitHub rows)."
)

SUMMARY_LEGEND = (
    "Only *error* findings count as detections and false alarms; warnings (advice that is often harmless) are "
    "scored apart: `warned_fault` = a warning on the buggy variant names a fault of the case, "
    "`warnings_per_healthy_run` = mean warnings on a healthy run. Healthy runs are the patched variants of valid "
    "cases and both variants of `no_bug` cases, when they learn (beat the best constant predictor's loss by 5 %, "
    "or the majority-class accuracy by 5 points, in most seeds). `separates` = valid cases with a healthy patched "
    "variant where the buggy variant has an error and the patched one none. Rates carry 95 % Wilson intervals. "
    "Subsets: `paper` = the cases in the paper's headline totals (SO 50079585 excluded, as the paper did); "
    "`all` = every case present; `valid` = cases whose status is valid; `new` = valid cases from outside the "
    "paper's benchmark (when there are any), which no detector here was developed on. Counts are over cases "
    "present, by majority over seeds. `detected`: any finding on the buggy variant; `localized`: the first "
    "finding names "
    "a faulty layer of the ground truth, or the kind of a layer-less fault (loss, optimizer, learning rate, "
    "...); `localized_fused`: the same, counting a Dense/Conv layer and the separate Activation layer after "
    "it as one layer, as the original programs had them; `diagnosed`: the first finding's diagnosis is one of "
    "the case's fault kinds; "
    "`suggested_fix`: the detector's first suggested fix names the kind of change the case's patch made (a fault "
    "code of its ground truth: change the activation, the loss, the learning rate, ...); `false_alarms`: an error "
    "on a healthy run (count over healthy runs). Time and steps to detect are medians over detected cases (steps count "
    "batch ends and epoch ends). `paper_detected`/`paper_localized` = the paper's published counts for the "
    "same cases, where it has a column for the method (CB = the authors' callback, which "
    "`layer-trend-faithful` reimplements)."
)


COMPARISON_LEGEND = (
    "Every detector on every case (subset `all`) and on the valid cases (`valid`), by majority over seeds. "
    "Only error findings count; warnings are scored apart (see summary.md). `separates`: valid cases with a "
    "healthy patched variant where the buggy run has an error and the patched run none. "
    "Columns as in summary.md: `detected` an error on the buggy variant; `localized` its first finding names a "
    "faulty layer or the kind of a layer-less fault; `diagnosed` its diagnosis is a fault kind of the case; "
    "`suggested_fix` its first suggested fix names the kind of change the patch made (– : the detector suggests "
    "no fixes); `false_alarms` an error on a healthy run (patched variants of valid cases and both variants of "
    "`no_bug` cases, that learn); rates with 95 % Wilson intervals; times are medians over detected cases "
    "(`structure` judges the program before training: 0 s)."
)


LAYOUT_LEGEND = (
    "The paper's Tables VI (Stack Overflow) and VII (GitHub) layout: per method `IB FL epoch/batch seconds`. "
    "IB = identified the bug on the buggy variant (for Keras callbacks: stopped before the budget), FL = the "
    "first finding localized the fault (`–` where a method cannot localize), epoch/batch of the first "
    "finding (1-based), seconds from the start of training. Our budgets are reduced (see the case files), so "
    "epochs and times are not comparable with the paper's; identified/localized are."
)

VERSUS_LEGEND = (
    "Each cell: paper → ours, for identified (IB) and localized (FL). The paper's X column is the union of the "
    "three Keras callbacks only on GitHub rows (on Stack Overflow rows it is another tool: not compared). CB is "
    "the authors' released callback, compared with `layer-trend-faithful`. `=` agree, `≠` disagree. Our FL here "
    "is `localized_fused` (a Dense layer and its separate Activation count as one), which is how the paper's "
    "cells read: its so-31880720 cell localizes a softmax fault at iteration 1, where only the Dense layer "
    "before the softmax can have reported."
)


FIDELITY_LEGEND = (
    "Per case, over the seeds run: `buggy shows` / `patched shows` = in how many seeds the case's symptom "
    "showed; `reproduced` = yes when the symptom shows in most buggy seeds and in few patched ones, no when "
    "not, flaky when the seeds disagree on the verdict; n/a for cases without a symptom (no real bug). Final "
    "training loss, validation loss (cases with a validation split) and accuracy are medians over seeds; "
    "`reported` are the values of the original post or paper (before → after), measured on the original data "
    "with the original budget. `buggy learns` / `patched learns` = in how many seeds the variant beat the "
    "no-learning reference (final training loss 5 % below the best constant predictor's for its loss and labels, "
    "or accuracy 5 points above the majority class); a valid case whose patched variant does not learn in most "
    "seeds is `fixed, not learning`: its patch removes the symptom within our budget but leaves no healthy "
    "control, so it is left out of false alarms."
)


@functools.cache
def code_table() -> dict[str, str]:
    """Every built-in detector's finding codes in words (each class's ``codes``, beside the code that emits them)."""
    out: dict[str, str] = {}
    for builtin in registry.TABLE:
        out.update(builtin.load().codes)
    return out


def code_words(code: str) -> str:
    """``EBDW`` -> ``EBDW (error in the weight gradients)``; a code it does not know, as it is."""
    words = code_table().get(code)
    return f"{code} ({words})" if words else code


def fault_words(code: str) -> str:
    """A diagnosis or fix code of the case schema (``HLR``) with its meaning."""
    from harness.cases.schema import FAULT_CODES

    words = FAULT_CODES.get(code)
    return f"{code}: {words.replace(' of layer k', '').replace(' at layer k', '')}" if words else code
