"""The vectorised parsers: dates in every locale, numbers, durations, options, Direction texts, uuid5 in SQL."""

from __future__ import annotations

import datetime as dt
import uuid

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from syncanalysis import bc
from syncanalysis.sources import ValueParseError
from syncanalysis.sources import captions as cap
from syncanalysis.sources.link import JOB_NAMESPACE, uuid5_sql
from syncanalysis.sources.parse import (
    parse_booleans,
    parse_datetimes,
    parse_direction,
    parse_durations,
    parse_integers,
    parse_options,
)

T = pd.Timestamp


def test_dates_in_each_locale_and_iso_serial_and_zones():
    got, p = parse_datetimes(["21/11/2026 23:51:15", "05/11/2026 07:44:49", ""])
    assert got.tolist()[:2] == [T("2026-11-21 23:51:15"), T("2026-11-05 07:44:49")] and pd.isna(got[2])
    assert (p.order, p.decided_by) == ("dmy", "values (a day above 12)")
    got, p = parse_datetimes(["11/21/2026 11:51:15 PM", "1/2/2026 12:05:01 AM", "1/2/2026 12:05:01 PM"])
    assert got.tolist() == [T("2026-11-21 23:51:15"), T("2026-01-02 00:05:01"), T("2026-01-02 12:05:01")]
    assert p.order == "mdy"
    got, p = parse_datetimes(["1.2.2026 07:44", "02.03.26 10:00:00,5".replace(",5", "")])
    assert got.tolist() == [T("2026-02-01 07:44"), T("2026-03-02 10:00")]
    assert p.decided_by.startswith("the '.' separator")
    got, _ = parse_datetimes(["2026-11-21T23:51:16.123Z", "2026-11-21 23:51:16+02:00", "2026-11-21"])
    assert got.tolist() == [T("2026-11-21 23:51:16.123"), T("2026-11-21 21:51:16"), T("2026-11-21")]
    got, p = parse_datetimes(["46000.5", "46000,25", "46000"])
    assert got.tolist() == [T("2025-12-09 12:00"), T("2025-12-09 06:00"), T("2025-12-09")]
    assert p.serial


def test_ambiguous_dates_follow_the_hints():
    # nothing above 12: AM/PM means en-US, a French/German file means day first, else en-US
    assert parse_datetimes(["1/2/2026 10:00:00 AM"])[0][0] == T("2026-01-02 10:00")
    assert parse_datetimes(["1/2/2026 10:00:00"], lang="fr")[0][0] == T("2026-02-01 10:00")
    assert parse_datetimes(["1/2/2026 10:00:00"], lang="en")[0][0] == T("2026-01-02 10:00")


def test_a_column_with_both_orders_fits_no_locale():
    with pytest.raises(ValueParseError, match=r"row 2, column 'value': this date column fits no locale: row 1 "
                                              r"\('13/01/2026'\) can only be day-first"):
        parse_datetimes(["13/01/2026", "01/13/2026", "01/01/2026"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2080, 12, 31)),
                min_size=1, max_size=30),
       st.sampled_from(["%d/%m/%Y %H:%M:%S", "%d.%m.%Y %H:%M:%S", "%m/%d/%Y %I:%M:%S %p", "%Y-%m-%d %H:%M:%S"]))
def test_dates_round_trip_in_any_supported_format(values, fmt):
    values = [v.replace(microsecond=0) for v in values]
    texts = [v.strftime(fmt) for v in values]
    lang = "fr" if fmt.startswith("%d") else None
    got, _ = parse_datetimes(texts, lang=lang)
    assert [x.to_pydatetime() for x in got] == values


def test_whole_numbers_with_separators():
    got = parse_integers(["1234", "1 234", "1.234", "1,234", "1\u00a0234", "1\u202f234", "12'345", "18.0", "18,00",
                          "-5", "", "1.5", "many"])
    assert got.tolist()[:10] == [1234, 1234, 1234, 1234, 1234, 1234, 12345, 18, 18, -5]
    assert got[10:].isna().all()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=-10**12, max_value=10**12), min_size=1, max_size=20),
       st.sampled_from([",", ".", " ", "\u202f", ""]))
def test_grouped_integers_round_trip(values, sep):
    texts = [f"{v:,}".replace(",", sep) for v in values]
    assert parse_integers(texts).tolist() == values


def test_durations_in_english_french_and_german():
    got = parse_durations(["2 seconds 340 milliseconds", "1 minute 5 seconds", "2 secondes 340 millisecondes",
                           "1 heure 3 minutes", "3 Sekunden 5 Millisekunden", "1 Stunde", "0", "", "2 fortnights"])
    assert got.tolist()[:7] == [2340, 65000, 2340, 3_780_000, 3005, 3_600_000, 0]
    assert got[7:].isna().all()


def test_booleans_and_options_in_every_language():
    assert parse_booleans(["Yes", "No", "Oui", "Non", "Ja", "Nein", "true", "0"]).tolist() == \
        [True, False, True, False, True, False, True, False]
    got = parse_options(["Synchronization", "Synchronisation", "Synchronisierung", "Découplage", "Kopplung", "?"],
                        cap.job_types())
    assert got.tolist()[:5] == ["Synchronization"] * 3 + ["Uncoupling", "Coupling"] and pd.isna(got[5])
    assert parse_options(["Restore records", "Delete coupling", "Restaurer les enregistrements", "Remove Coupling"],
                         cap.deletion_resolutions()).tolist() == \
        ["Restore Records", "Remove Coupling", "Restore Records", "Remove Coupling"]
    assert parse_options(["Success", "Réussite", "Failure", "Fehler"], cap.results()).tolist() == \
        ["Success", "Success", "Failure", "Failure"]


def test_direction_texts_name_the_tables_and_the_direction():
    d = parse_direction("Customer to Dataverse Account.")
    assert (d.source, d.destination, d.synch_direction, d.language) == (18, 5341, bc.TO_INTEGRATION, "en")
    d = parse_direction("Compte Dataverse vers Fournisseur.")
    assert (d.source, d.destination, d.synch_direction, d.language) == (5341, 23, bc.FROM_INTEGRATION, "fr")
    d = parse_direction("Contact Dataverse vers Contact.")
    assert (d.source, d.destination) == (5342, 5050)
    d = parse_direction("Salesperson/Purchaser to Dataverse Systemuser.")
    assert d.source == 13
    assert parse_direction("") is None and parse_direction("Foo to Bar.") is None


def test_uuid5_in_sql_matches_python():
    names = ["E|C|CUSTOMER|ToIntegrationTable|Synchronization|2026-01-01 00:00:00|1", "é|ü|", ""]
    con = duckdb.connect()
    got = [r[0] for r in con.execute(f"SELECT {uuid5_sql('n')} FROM (SELECT unnest(?) AS n)", [names]).fetchall()]
    assert got == [uuid.uuid5(JOB_NAMESPACE, n) for n in names]


def test_captions_cover_every_layout_column_in_three_languages():
    for layout in cap.LAYOUTS.values():
        if layout.kind == "incidents":
            continue
        for col in layout.columns:
            if col.target.startswith("_") and col.kind == cap.IGNORE:
                continue
            langs = {lang for key in col.keys for lang in cap.LANGS if cap.captions(key)[lang]}
            assert langs == set(cap.LANGS), (layout.kind, col.target)


def test_folded_option_mapping_knows_every_caption_and_flags_the_rest():
    import duckdb

    from syncanalysis.sources import captions as cap
    from syncanalysis.sources.parse import folded_sql

    expr, unknown = folded_sql("v", cap.results(), "VARCHAR")
    rows = duckdb.sql(f"SELECT v, {expr}, {unknown} FROM (VALUES ('Success'), (' FAILURE '), (''), ('Maybe')) t(v)"
                      ).fetchall()
    assert rows == [("Success", "Success", False), (" FAILURE ", "Failure", False), ("", None, False),
                    ("Maybe", None, True)]
