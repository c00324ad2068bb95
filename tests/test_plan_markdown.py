"""Plan Markdown escapes every value it writes: an admin opens it in a Markdown viewer, which renders HTML."""

from __future__ import annotations

from syncanalysis.actions.planfile import plan_markdown


def _document(**over):
    step = {"page": "Coupled Data Synchronization Errors", "page_id": 5333, "bc_action": "Retry",
            "mapping": "CUSTOMER", "table_caption": "Customer", "table_id": 18, "role": "child", "how": "Open it",
            "count": 1, "bc_shows": "1 records have been restored for synchronization.",
            "batches": [{"filter": "Table ID: 18; Description: C`1|C2", "records": [
                {"description": "C`1 <script>x</script>", "coupled_to": "a|b\nc", "record_exists": True,
                 "coupled_record_exists": None, "outcome": "will retry"}]}]}
    doc = {"caption": "Retry", "environment": "<img src=x onerror=alert(1)>", "company": "CRONUS | Ltd",
           "action_id": 7, "created": "2026-12-07T01:00:00.000000", "who": "ann",
           "parameters": {"selection": {"search": "<b>`x`</b>"}},
           "counts": {"targets": 1, "will_change": 1, "no_op": 0, "refused": 0}, "notes": [], "steps": [step],
           "not_applied": []}
    return doc | over


def test_headings_cells_and_code_spans_cannot_carry_markup_or_break_out():
    text = plan_markdown(_document())
    assert "<img" not in text and "<script>" not in text
    assert "# Retry – &lt;img src=x onerror=alert(1)&gt; / CRONUS \\| Ltd" in text
    # the filter keeps BC's | (its OR) inside a code span fenced past the backtick in the key
    assert "1. ``Table ID: 18; Description: C`1|C2``" in text
    assert "| C`1 &lt;script&gt;x&lt;/script&gt; | a\\|b c | Yes |  | will retry |" in text
    assert 'Parameters: ``{"selection": {"search": "<b>`x`</b>"}}``' in text  # code: shown as is, never rendered
