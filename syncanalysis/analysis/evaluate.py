"""Judge the classifier on labelled error texts: accuracy, unclassified share, confidently-wrong count.

The labelled texts are real messages collected from public sources (``tests/data/real_messages``),
each with the cause a BC consultant would give it. Their labels use a consultant's words, a little
coarser than ours in places (``mapping`` is our ``configuration`` or ``option-mapping``); ``ACCEPTED``
says which of our causes count as right for each label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .causes import CAUSES, UNCLASSIFIED
from .signatures import classify

# A label of the evaluation set -> the causes of ours that are right for it.
ACCEPTED: dict[str, frozenset[str]] = {
    **{c: frozenset({c}) for c in CAUSES},
    "licence-or-user": frozenset({"permission"}),  # our permission cause names licences and disabled users
    "unit-of-measure": frozenset({"uom"}),
    "owner": frozenset({"ownership"}),
    "mapping": frozenset({"configuration", "option-mapping"}),
    "dependency": frozenset({"not-coupled"}),
    "not-found": frozenset({"not-found", "deleted"}),  # a consultant's "not found" includes "was deleted"
    "unclassified": frozenset({UNCLASSIFIED}),
}


@dataclass(frozen=True)
class Evaluation:
    """The classifier's results on a labelled set.

    Attributes
    ----------
    rows
        One row per text: the input columns plus ``got`` (our cause), ``match``, ``match_detail``,
        ``language`` and ``verdict`` (``right``, ``unclassified`` or ``wrong``).
    """

    rows: pd.DataFrame

    @property
    def n(self) -> int:
        """Number of texts."""
        return len(self.rows)

    def share(self, verdict: str) -> float:
        """Share of texts with ``verdict`` (``right``, ``unclassified`` or ``wrong``)."""
        return float((self.rows["verdict"] == verdict).mean()) if self.n else 0.0

    def count(self, verdict: str) -> int:
        """Number of texts with ``verdict``."""
        return int((self.rows["verdict"] == verdict).sum())


def evaluate(labelled: pd.DataFrame) -> Evaluation:
    """Classify the ``text`` column and judge each result against ``expected_cause``.

    A result is ``right`` when our cause is one :data:`ACCEPTED` gives for the label, ``unclassified``
    when we gave no cause (and the label expected one), and ``wrong`` when we gave another cause —
    confidently wrong, the worst outcome, since the remedy shown is then harmful.

    Parameters
    ----------
    labelled
        Columns ``text`` and ``expected_cause``, optionally ``also_right`` (others are kept).

    Returns
    -------
    Evaluation

    Raises
    ------
    ValueError
        A label is not one :data:`ACCEPTED` knows (the row's ``id`` or index is named).
    """
    unknown = labelled.loc[~labelled["expected_cause"].isin(ACCEPTED)]
    if len(unknown):
        first = unknown.iloc[0]
        raise ValueError(f"row {first.get('id', unknown.index[0])}: expected_cause {first['expected_cause']!r} is not "
                         f"one of {sorted(ACCEPTED)}; correct the label")
    res = classify(labelled["text"]).set_index("error_message")
    out = labelled.copy()
    for col, src in (("got", "cause"), ("match", "match"), ("match_detail", "match_detail"),
                     ("language", "language"), ("signature", "signature")):
        out[col] = out["text"].map(res[src])
    # a reviewed row may name further causes of ours that are right too (column also_right, blank-separated)
    also = out["also_right"].fillna("").str.split() if "also_right" in out else [[]] * len(out)
    right = [got in ACCEPTED[exp] or got in more
             for got, exp, more in zip(out["got"], out["expected_cause"], also, strict=True)]
    out["verdict"] = ["right" if ok else "unclassified" if got == UNCLASSIFIED else "wrong"
                      for ok, got in zip(right, out["got"], strict=True)]
    return Evaluation(out)


def read_labelled(path: str | Path) -> pd.DataFrame:
    """Read a labelled CSV (``id,text,expected_cause,…``) as text columns, with a clear error if it is not one.

    Raises
    ------
    ValueError
        The file lacks the ``id``, ``text`` or ``expected_cause`` column, or has an empty text.
    """
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = {"id", "text", "expected_cause"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; the header must start id,text,expected_cause")
    empty = df.loc[df["text"].str.strip() == "", "id"]
    if len(empty):
        raise ValueError(f"{path}: row {empty.iloc[0]} has an empty text")
    return df
