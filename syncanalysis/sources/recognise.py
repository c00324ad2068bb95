"""Stage 2: which BC export a part is, and which canonical column each of its columns is.

Columns are matched by caption (English, French, German), by field name, and where neither is known
by their values' signature in page order (spec §8); the match says which column was matched how.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from . import captions as cap
from .errors import UnrecognisedFileError
from .parse import looks_like
from .read import Part

_KEYS = ("_environment", "_company")


@dataclass
class ColumnMatch:
    """One column of a part: its index and header, the canonical column it matched (or ``None``) and how."""

    index: int
    header: str
    column: cap.Column | None
    how: str  # "caption (en)", "field name", "column signature", "ignored", "unknown"


@dataclass
class Match:
    """A part matched to a layout: its columns, caption language, score and the required columns missing."""

    layout: cap.Layout
    columns: list[ColumnMatch]
    language: str | None
    score: float
    missing: list[cap.Column]

    @property
    def ok(self) -> bool:
        """Whether no required column is missing."""
        return not self.missing

    def target(self, name: str) -> ColumnMatch | None:
        """The column matched to canonical column ``name``, or ``None``."""
        return next((c for c in self.columns if c.column is not None and c.column.target == name), None)


def value_kinds(sample: Sequence[Sequence[str]], width: int) -> list[set[str]]:
    """Per column, the kinds (:func:`looks_like`) its sampled values look like."""
    kinds: list[set[str]] = [set() for _ in range(width)]
    for row in sample:  # a bounded sample (at most SAMPLE_ROWS rows), for the column signatures
        for i in range(min(width, len(row))):
            kinds[i].add(looks_like(str(row[i])))
    return kinds


def _accepts(column: cap.Column, kinds: set[str], values: list[str]) -> bool:
    allowed = cap.ACCEPTS.get(column.kind)
    if allowed is not None:
        return bool(kinds) and kinds <= allowed
    if column.kind == cap.DIRECTION:
        return all(not v.strip() or v.strip().endswith(".") for v in values) and "text" in kinds
    # text-like (text, options, table captions): a column with text in it (or nothing at all)
    return "text" in kinds or kinds <= {"empty"}


def _match(layout: cap.Layout, part: Part, kinds: list[set[str]]) -> Match:
    headers = part.headers
    lookups = [(c, _names_with_langs(c)) for c in layout.columns]
    used: set[int] = set()
    matches: list[ColumnMatch] = []
    for i, h in enumerate(headers):
        key = cap.normalize(h)
        found = None
        if key:
            for j, (c, names) in enumerate(lookups):
                if j not in used and key in names:
                    found = (j, c, names[key])
                    break
        if found:
            used.add(found[0])
            matches.append(ColumnMatch(i, h, found[1], found[2]))
        else:
            matches.append(ColumnMatch(i, h, None, "unknown"))
    # language: the one most matched captions are in
    votes = {lang: sum(1 for m in matches if isinstance(m.how, set) and lang in m.how) for lang in cap.LANGS}
    language = max(votes, key=lambda k: (votes[k], -cap.LANGS.index(k))) if any(votes.values()) else None
    for m in matches:
        if isinstance(m.how, set):
            langs = sorted(m.how - {"field"}, key=cap.LANGS.index)
            m.how = (f"caption ({language})" if language in m.how else f"caption ({langs[0]})") if langs \
                else "field name"
    # column signature: place unknown headers between matched ones, in page order (spec §8)
    values = [[str(r[i]) if i < len(r) else "" for r in part.sample] for i in range(len(headers))]
    pos = {id(c): j for j, (c, _) in enumerate(lookups)}
    anchors = [(m.index, pos[id(m.column)]) for m in matches if m.column is not None]
    if all(a[1] < b[1] for a, b in zip(anchors, anchors[1:])):
        bounds = [(-1, -1)] + anchors + [(len(headers), len(lookups))]
        for (fa, la), (fb, lb) in zip(bounds, bounds[1:]):
            files = [i for i in range(fa + 1, fb)
                     if matches[i].header.strip() or kinds[i] - {"empty"}]
            for i in range(fa + 1, fb):
                if i not in files:
                    matches[i].how = "ignored (empty)"
            # the toolkit's environment/company columns are keys: matched by their header only, never by position
            slots = [j for j in range(la + 1, lb) if j not in used and lookups[j][0].target not in _KEYS]
            for i, j in _align(files, slots, lambda i, j: _accepts(lookups[j][0], kinds[i], values[i]),
                               lambda j: 1 if lookups[j][0].hidden else 2):
                matches[i].column, matches[i].how = lookups[j][0], "column signature"
                used.add(j)
    for m in matches:
        if m.column is not None and m.column.kind == cap.IGNORE:
            m.how = f"{m.how}, not loaded"
    missing = [c for j, (c, _) in enumerate(lookups) if c.required and j not in used]
    by_caption = sum(1 for m in matches if m.column is not None and m.how.startswith(("caption", "field")))
    by_sig = sum(1 for m in matches if m.how == "column signature")
    unknown = sum(1 for m in matches if m.column is None and m.header.strip())
    score = by_caption + 0.5 * by_sig - 0.25 * unknown
    return Match(layout, matches, language, score, missing)


def _align(files: list[int], slots: list[int], fits, weight) -> list[tuple[int, int]]:
    """Order-preserving assignment of file columns to layout columns maximizing the matched weight.

    Hidden page columns weigh less, so six counters go to Inserted..Skipped rather than Uncoupled/Coupled.
    """
    n, m = len(files), len(slots)
    if not n or not m:
        return []
    best = [[0.0] * (m + 1) for _ in range(n + 1)]
    for i in range(1, n + 1):  # a small table: a page has at most a few dozen columns
        for j in range(1, m + 1):
            best[i][j] = max(best[i - 1][j], best[i][j - 1])
            if fits(files[i - 1], slots[j - 1]):
                best[i][j] = max(best[i][j], best[i - 1][j - 1] + weight(slots[j - 1]))
    out, i, j = [], n, m
    while i and j:
        if fits(files[i - 1], slots[j - 1]) and best[i][j] == best[i - 1][j - 1] + weight(slots[j - 1]):
            out.append((files[i - 1], slots[j - 1]))
            i, j = i - 1, j - 1
        elif best[i][j] == best[i - 1][j]:
            i -= 1
        else:
            j -= 1
    return out[::-1]


def _names_with_langs(column: cap.Column) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for key in column.keys:
        for lang in cap.LANGS:
            for c in cap.captions(key)[lang]:
                out.setdefault(cap.normalize(c), set()).add(lang)
    for key in column.keys:
        out.setdefault(cap.normalize(cap.field_name(key)), set()).add("field")
    out.setdefault(cap.normalize(column.target.strip("_")), set()).add("field")
    return out


def recognise(part: Part, kind: str = "auto") -> Match:
    """Recognise which export a part is; raises :class:`UnrecognisedFileError` naming what is missing."""
    if kind != "auto" and kind not in cap.LAYOUTS:
        raise UnrecognisedFileError(f"unknown kind {kind!r}", path=part.path,
                                    hint=f"Use one of {', '.join(cap.KINDS)}")
    layouts = [cap.LAYOUTS[kind]] if kind != "auto" else list(cap.LAYOUTS.values())
    if part.package and kind == "auto":  # a configuration-package sheet names its table in C1
        wanted = f"table-{part.package[2]}"
        layouts = [cap.LAYOUTS[wanted]] if wanted in cap.LAYOUTS else layouts
    kinds = value_kinds(part.sample, len(part.headers))  # what each column's sampled values look like
    matches = sorted((_match(lay, part, kinds) for lay in layouts), key=lambda m: (m.ok, m.score), reverse=True)
    best = matches[0]
    strong = sum(1 for m in best.columns if m.column is not None and not m.how.startswith("column signature"))
    typed = sum(1 for m in best.columns if m.how == "column signature" and m.column is not None
                and m.column.kind in (cap.DATETIME, cap.INT, cap.DURATION, cap.GUID))
    if best.ok and (strong >= 2 or typed >= 3):
        return best
    shown = ", ".join(repr(h) for h in part.headers if h.strip()) or "(no captions)"
    if best.missing and (kind != "auto" or strong >= 2):
        need = ", ".join(repr(c.keys and cap.captions(c.keys[0])["en"][0] or c.target) for c in best.missing)
        raise UnrecognisedFileError(
            f"this looks like a {best.layout.title} export ({best.layout.kind}) but lacks the column(s) {need}; "
            f"its columns are {shown}", path=part.path, sheet=part.sheet, row=part.header_row,
            hint="Show those columns on the page (Personalize) and export again, or pass the right --kind")
    raise UnrecognisedFileError(
        f"this is not an export of a known page or table (its columns are {shown})", path=part.path,
        sheet=part.sheet, row=part.header_row,
        hint="Load exports of Integration Synchronization Jobs/Errors, Coupled Data Synchronization Errors, "
             "Integration Table Mappings, or table exports of tables 5331/5335/5338/5339")
