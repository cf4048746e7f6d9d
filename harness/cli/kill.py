"""``kill``'s orchestration: train the zoo's programs and their mutants over seeds (the runner), decide each
mutant (scoring), and rewrite its case file with the decision (the case writer).

Training goes through the normal runner and its content-addressed store, so the
seeds trained here are the seeds the suite's run finds in the cache.
"""

from __future__ import annotations

import dataclasses
import tempfile

from harness.cases.load import LoadedCase
from harness.cases.writer import dump, write_case_file
from harness.running.runner import RunConfig, run
from harness.scoring.judge import decided_case, decisions


def judge_mutants(cases: list[LoadedCase], seeds: int, jobs: int, cache: str, timeout,
                  backend: str = "loky", scheduler: str | None = None, trust_case_code: bool = False) -> dict:
    """{mutant id: decision}; every mutant's case file is rewritten with its decision."""
    programs = {c.id: c for c in cases if c.case.status == "healthy"}
    mutants = [c for c in cases if (c.case.generated or {}).get("base") in programs]
    with tempfile.TemporaryDirectory(prefix="bugbench-kill-") as results:
        config = RunConfig(results_dir=results, cache_dir=cache, jobs=jobs, seeds=tuple(range(seeds)),
                           detectors=(), timeout=timeout, backend=backend, scheduler=scheduler,
                           trust_case_code=trust_case_code)
        # A program trains as its patched variant (its only one); a mutant as its buggy variant: the mutant's
        # patched variant is its program, trained already.
        records = run(list(programs.values()), config) + run(mutants, dataclasses.replace(config, variants=("buggy",)))
    decided = decisions(programs, mutants, records, seeds)
    for mutant in mutants:
        record_decision(mutant.path, decided[mutant.id], decided[mutant.id].pop("higher_is_better"))
    return decided


def record_decision(path: str, decision: dict, higher_is_better: bool) -> None:
    """Rewrite a mutant's case file with its decision, keeping its header comment."""
    import yaml

    with open(path) as fh:
        header = "".join(line for line in fh if line.startswith("#"))
    with open(path) as fh:
        case = yaml.safe_load(fh)
    write_case_file(path, header + dump(decided_case(case, decision, higher_is_better)), replaces="anything")
