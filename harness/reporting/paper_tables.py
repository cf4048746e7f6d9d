"""The paper's own table layouts (Tables VI and VII) and our cells beside the paper's.

Pure functions of the per-case majority outcomes and the case snapshots stored
in each result file; written by ``harness.reporting.tables.report``.
"""

from __future__ import annotations

import pandas as pd

from harness.reporting.glossary import LAYOUT_LEGEND, METHODS, VERSUS_LEGEND
from harness.reporting.render import write_table
from harness.running.records import PaperSnapshot, UnitRecord
from harness.scoring.intervals import Count


def papers(records: list[UnitRecord]) -> dict[str, PaperSnapshot | None]:
    """{case id: the paper's row of it}; None for a case the paper did not study."""
    return {r.case.id: r.case.paper for r in records}


def has_cell(paper: PaperSnapshot | None, column: str | None) -> bool:
    """Whether the paper published a cell for this method (its column) on this case."""
    return bool(column) and paper is not None and bool(paper.cells.get(column))


def paper_cell(paper: PaperSnapshot, column: str, field: str = "IB") -> str:
    """The paper's published Y/N for one method on one case ("n/a" where it has no such cell)."""
    # A cell is the paper's own mapping (IB, FL, ...), published with gaps: "–" where it printed none.
    cell = paper.cells.get(column) or {}
    if column == "X" and paper.X_is != "union":
        return "n/a"
    return str(cell.get(field, "–"))


def write_all(per_case: pd.DataFrame, records: list[UnitRecord], results_dir: str) -> list[str]:
    paper = papers(records)
    versus, agreement = paper_vs_ours(per_case, paper)
    return [
        write_table(layout(per_case, paper), results_dir, "paper_layout", "Tables VI/VII layout, regenerated",
                    [LAYOUT_LEGEND], latex=True),
        write_table(versus, results_dir, "paper_vs_ours", "The paper's cells beside ours", [VERSUS_LEGEND], latex=True),
        write_table(agreement, results_dir, "paper_agreement", "Agreement with the paper, per method",
                    ["Counted over cases where the paper has a Y/N cell for the method and our run succeeded. "
                     "`disagreements` lists the cases (see paper_vs_ours.md for what ours found)."], latex=True),
    ]


def _buggy(per_case: pd.DataFrame) -> dict:
    b = per_case[per_case.variant == "buggy"]
    return {(r.case, r.detector): r._asdict() for r in b.itertuples(index=False)}


def _yn(value) -> str:
    return "–" if value is None or (isinstance(value, float) and pd.isna(value)) else ("Y" if value else "N")


def _cell(row: dict | None) -> str:
    if row is None:
        return ""
    if not row["ok"]:
        return "ERR"
    if not row["detected"]:
        return "N –" if row["localized"] is None else "N N"
    where = f"{int(row['first_epoch']) + 1}/" + (f"{int(row['first_batch']) + 1}" if pd.notna(row["first_batch"])
                                                 else "end")
    return f"Y {_yn(row['localized'])} {where} {row['first_seconds']:.2f}s"


def layout(per_case: pd.DataFrame, paper: dict | None = None) -> pd.DataFrame:
    """The paper's layout; a case the paper has no row for is listed under "–" (not the paper's Table VI)."""
    if per_case.empty:
        return pd.DataFrame()
    rows, index = [], _buggy(per_case)
    detectors = set(per_case["detector"])
    for case in sorted(per_case["case"].unique(), key=_paper_order):
        row_of = None if paper is None else paper.get(case)
        in_paper = paper is None or bool(row_of is not None and row_of.row)
        row = {"table": ("VII" if case.startswith("gh-") else "VI") if in_paper else "–", "case": case}
        for m in METHODS:
            if m.heading and m.detector in detectors:
                row[m.heading] = _cell(index.get((case, m.detector)))
        rows.append(row)
    return pd.DataFrame(rows)


def paper_vs_ours(per_case: pd.DataFrame, paper: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    if per_case.empty:
        return pd.DataFrame(), pd.DataFrame()
    index, rows = _buggy(per_case), []
    tally = {m.detector: {"ib": [], "fl": [], "diff": []} for m in METHODS if m.paper_column}
    for case in sorted(per_case["case"].unique(), key=_paper_order):
        row = {"case": case}
        for m in METHODS:
            det, column, heading = m.detector, m.paper_column, m.heading
            ours = index.get((case, det))
            if ours is None or not has_cell(paper.get(case), column):
                continue
            p_ib, p_fl = paper_cell(paper[case], column, "IB"), paper_cell(paper[case], column, "FL")
            if p_ib not in ("Y", "N") or not ours["ok"]:
                row[heading] = f"{p_ib} → {'ERR' if not ours['ok'] else _yn(ours['detected'])}"
                continue
            o_ib, o_fl = _yn(ours["detected"]), _yn(ours["localized_fused"])
            tally[det]["ib"].append(p_ib == o_ib)
            text = f"IB {p_ib}→{o_ib} {'=' if p_ib == o_ib else '≠'}"
            if p_fl in ("Y", "N") and o_fl in ("Y", "N"):
                tally[det]["fl"].append(p_fl == o_fl)
                text += f", FL {p_fl}→{o_fl} {'=' if p_fl == o_fl else '≠'}"
            if p_ib != o_ib or (p_fl in ("Y", "N") and o_fl in ("Y", "N") and p_fl != o_fl):
                tally[det]["diff"].append(case)
            row[heading] = text
        row["ours first finding (faithful)"] = (index.get((case, "layer-trend-faithful")) or {}).get("message")
        rows.append(row)
    agreement = pd.DataFrame([
        {"method": heading, "paper column": column,
         "IB agree": Count(sum(t["ib"]), len(t["ib"])),
         "FL agree": Count(sum(t["fl"]), len(t["fl"])) if t["fl"] else "–",
         "disagreements": ", ".join(t["diff"]) or "none"}
        for det, column, heading in ((m.detector, m.paper_column, m.heading) for m in METHODS)
        if column and (t := tally[det])["ib"]
    ])
    return pd.DataFrame(rows), agreement


def _paper_order(case: str):
    return (case.startswith("gh-"), case)
