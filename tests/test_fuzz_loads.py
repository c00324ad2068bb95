"""Damaged copies of a real export: every load refuses naming the file, or stores exactly what the file says.

The corpus is the first records of ``sample_data``'s table 5339 export, damaged by seeded mutations (cut
anywhere, a byte changed, a separator, quote, NUL or line break inserted, a line repeated or dropped).
The oracle is Python's csv module reading the same damaged bytes, not the loaders under test. Bounded:
a fixed number of cases, about half a minute.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
from pathlib import Path

import pytest

from syncanalysis import Workspace
from syncanalysis.sources import SourceError, load_files

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data" / "tables" / "Integration Synch. Job Errors.csv.gz"
CASES = 400


def _corpus() -> bytes:
    """The header and the first 40 records of the real export (records may span lines: read as CSV)."""
    text = gzip.decompress(SAMPLE.read_bytes()).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text)))[:41]
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _mutate(data: bytes, rnd: random.Random) -> bytes:
    kind = rnd.randrange(7)
    i = rnd.randrange(1, len(data))
    if kind == 0:
        return data[:i]  # cut off anywhere
    if kind == 1:
        return data[:i] + bytes([rnd.randrange(256)]) + data[i + 1:]  # one byte changed
    if kind == 2:
        return data[:i] + rnd.choice([b",", b'"', b"\x00", b"\r\n", b";", b"\xe9"]) + data[i:]
    lines = data.split(b"\r\n")
    j = rnd.randrange(1, max(2, len(lines) - 1))
    if kind == 3:
        return b"\r\n".join(lines[:j] + [lines[j]] + lines[j:])  # a physical line repeated
    if kind == 4:
        return b"\r\n".join(lines[:j] + lines[j + 1:])  # a physical line dropped
    if kind == 5:
        return data[:i] + data[i + 1:]  # one byte dropped
    return data.replace(b",", b";", rnd.randrange(1, 4))  # a few separators changed


def _expected(data: bytes) -> dict[int, tuple[str, str]] | None:
    """``{No.: (Message, Error Message)}`` as the csv module reads the damaged file (None: it cannot)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:  # an 8-bit file with no UTF-8 in it: Windows-1252, as BC writes them
        text = data.decode("cp1252", errors="replace")
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        return None
    header = rows[0] if rows else []
    if "No." not in header or "Error Message" not in header:
        return None
    no, msg, err = header.index("No."), header.index("Message"), header.index("Error Message")
    out = {}
    for r in rows[1:]:
        if len(r) == len(header) and r[no].strip().isdigit():
            out[int(r[no])] = (r[msg], r[err])
    return out


@pytest.mark.timeout(300)
def test_damaged_exports_are_refused_or_stored_exactly(tmp_path):
    base = _corpus()
    rnd = random.Random(15)
    stored_cases = refused = 0
    for case in range(CASES):
        data = _mutate(base, rnd)
        path = tmp_path / f"case{case}.csv"
        path.write_bytes(data)
        ws = Workspace()
        try:
            load_files(ws, [path], environment="E", company="C", progress=False)
        except SourceError as exc:
            refused += 1
            assert str(path) in str(exc), (case, str(exc)[:200])  # the message names the file...
            assert ws.count("job_errors") == 0  # ...and nothing was stored
            continue
        stored_cases += 1
        expected = _expected(data)
        assert expected is not None, (case, "loaded a file the csv module cannot read")
        got = ws.sql("SELECT error_no, message, error_message FROM job_errors").itertuples(index=False)
        for error_no, message, error_message in got:
            assert error_no in expected, (case, error_no)
            want_msg, want_err = expected[error_no]
            # exactly the file's text (blank is NULL; BC's limits cut with a warning)
            assert (message or "") == want_msg[:250], (case, error_no, message, want_msg)
            assert (error_message or "") == want_err[:2048], (case, error_no)
        assert ws.count("job_errors") == len(expected), case  # no row lost or made up
    print(f"{stored_cases} stored, {refused} refused")
    assert stored_cases > 40 and refused > 40  # both outcomes were exercised
