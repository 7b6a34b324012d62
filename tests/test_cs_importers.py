"""CS imports, parsing and validation only: bytes in, typed records and a report out.

No database and no Flask: every test feeds bytes (or a generator-backed file object) to
``cs_metrics.importers`` and checks records, row errors, warnings and file-level errors.
"""

from __future__ import annotations

import csv
import io
import os
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs_metrics.health import CalculatorInputError
from cs_metrics.importers import (
    KINDS,
    AccountRow,
    ImportFileError,
    TicketRow,
    UsageEventRow,
    ValidationReport,
    _DateContext,
    _norm_header,
    _parse_number,
    _parse_temporal,
    errors_csv,
    open_rows,
    validate_all,
    validate_stream,
)

pytestmark = pytest.mark.database_free

DATA = Path(__file__).parent / "data" / "cs_import"


def csv_bytes(text: str, encoding: str = "utf-8") -> io.BytesIO:
    return io.BytesIO(text.encode(encoding))


def codes(report: ValidationReport) -> list[tuple[int, str, str]]:
    return [(e.line, e.field or "", e.code) for e in report.errors]


def warning_codes(report: ValidationReport) -> list[str]:
    return [w.code for w in report.warnings]


class ChunkedRaw(io.RawIOBase):
    """A read-only, non-seekable binary file fed by a generator of byte chunks."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = b""

    def readable(self) -> bool:
        return True

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._buffer:
            try:
                self._buffer = next(self._chunks)
            except StopIteration:
                return 0
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        self._buffer = self._buffer[size:]
        return size


# --------------------------------------------------------------------------------------------
# Sample files
# --------------------------------------------------------------------------------------------


def test_sample_accounts_file_in_gbk_with_chinese_headers() -> None:
    with (DATA / "accounts_gbk.csv").open("rb") as handle:
        result = validate_all("accounts", handle)
    report = result.report
    assert report.encoding == "gb18030"
    assert report.ok, report.errors
    assert report.columns == ("external_id", "name", "arr", "contract_start", "renewal_date",
                              "csm_email", "region")  # fmt: skip
    first = result.records[0]
    assert isinstance(first, AccountRow)
    assert first.name == "北京星辰科技有限公司"
    assert first.arr == Decimal("1234567.89")
    assert first.renewal_date == date(2026, 3, 1)
    assert first.csm_email == "li.lei@example.com"
    assert [r.line for r in result.records] == [2, 3, 4]


def test_sample_usage_file_semicolon_utf8_bom() -> None:
    with (DATA / "usage_events_semicolon_bom.csv").open("rb") as handle:
        result = validate_all("usage_events", handle)
    assert result.report.encoding == "utf-8-sig"
    assert result.report.delimiter == ";"
    assert result.report.ok
    assert result.records[0] == UsageEventRow(2, "A-1", date(2026, 3, 1), "logins", Decimal("12.5"))


# --------------------------------------------------------------------------------------------
# Headers
# --------------------------------------------------------------------------------------------


def test_headers_are_case_and_space_insensitive_with_units_and_aliases() -> None:
    text = " External ID ,NAME,arr (USD),Renewal-Date,客户等级\nA1,Acme,100,2026-01-02,Gold\n"
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.ok
    assert result.records[0].arr == Decimal(100)
    assert result.records[0].tier == "Gold"
    assert result.report.columns == ("external_id", "name", "arr", "renewal_date", "tier")


def test_missing_required_headers_is_a_file_error_listing_them() -> None:
    with pytest.raises(ImportFileError) as caught:
        validate_stream("invoices", csv_bytes("external_id,amount\nI1,5\n"))
    error = caught.value
    assert isinstance(error, CalculatorInputError)
    assert (error.field, error.code) == ("header", "missing_columns")
    assert error.params["columns"] == ["account_external_id", "order_date"]


def test_unknown_headers_warn_and_are_ignored() -> None:
    text = "external_id,name,favourite colour,\nA1,Acme,blue,\n"
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.ok
    assert warning_codes(result.report) == ["unknown_columns", "unnamed_columns"]
    assert result.report.warnings[0].params["columns"] == ["favourite colour"]


def test_two_columns_for_one_field_is_a_file_error() -> None:
    with pytest.raises(ImportFileError) as caught:
        validate_stream("accounts", csv_bytes("external_id,name,客户名称\nA1,a,b\n"))
    assert caught.value.code == "duplicate_columns"


def test_aliases_never_map_to_two_fields() -> None:
    for spec in KINDS.values():
        seen: dict[str, str] = {}
        for field_spec in spec.fields:
            for alias in (field_spec.name, *field_spec.aliases):
                key = _norm_header(alias)
                assert seen.setdefault(key, field_spec.name) == field_spec.name, (spec.name, key)


def test_unknown_kind() -> None:
    with pytest.raises(ImportFileError) as caught:
        validate_stream("leads", csv_bytes("a\n1\n"))
    assert caught.value.code == "unknown_kind"


# --------------------------------------------------------------------------------------------
# Encodings, delimiters, shape of the file
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("gbk", "gb18030"),
     ("gb18030", "gb18030"), ("utf-16", "utf-16")],
)  # fmt: skip
def test_encodings_are_detected(encoding: str, expected: str) -> None:
    text = "外部编号,名称\nC1,上海云图信息技术\nC2,Zürich AG\n" if encoding != "gbk" else (
        "外部编号,名称\nC1,上海云图信息技术\nC2,深圳\n"
    )  # fmt: skip
    result = validate_all("accounts", csv_bytes(text, encoding))
    assert result.report.encoding == expected
    assert result.records[0].name == "上海云图信息技术"
    assert result.records[0].external_id == "C1"  # the BOM is not part of the first header


def test_ascii_start_then_gbk_later_switches_encoding() -> None:
    body = "external_id,name\n" + "".join(f"A{i},Acme {i}\n" for i in range(200))
    data = (body + "Z1,北京\n").encode("gbk")
    stream = open_rows(io.BytesIO(data), sample_size=64)
    rows = list(stream.rows())
    assert stream.encoding == "gb18030"
    assert rows[-1] == (202, ["Z1", "北京"])


def test_undecodable_bytes_name_the_line() -> None:
    data = "external_id,name\nA1,Zürich\n".encode() + b"A2,\xff\xfe\xfd bad\n"
    result = validate_all("accounts", io.BytesIO(data))
    error = result.report.file_error
    assert error is not None
    assert (error.code, error.params["line"]) == ("undecodable", 3)
    assert "line 3" in error.message
    assert result.records == []


def test_undecodable_bytes_after_the_sample_name_the_line() -> None:
    lines = "external_id,name\n" + "".join(f"A{i},Zürich {i}\n" for i in range(5000))
    data = lines.encode() + b"B1,\xff\xff\n" + b"B2,ok\n"
    stream = validate_stream("accounts", io.BytesIO(data))
    with pytest.raises(ImportFileError) as caught:
        list(stream)
    assert caught.value.params["line"] == 5002
    assert stream.report.file_error is caught.value
    assert not stream.report.complete


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [("external_id;name;arr\nA1;Acme;1.234,50\n", ";"),
     ("external_id\tname\tarr\nA1\tAcme\t1,234.50\n", "\t"),
     ("sep=;\nexternal_id;name;arr\nA1;Acme;1.234,50\n", ";"),
     ('external_id,name,arr\nA1,"Acme; Inc",1234.5\n', ",")],
)  # fmt: skip
def test_delimiters(text: str, delimiter: str) -> None:
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.delimiter == delimiter
    assert result.report.ok, result.report.errors
    assert result.records[0].arr == Decimal("1234.5")


def test_old_mac_line_endings_and_multiline_cells_keep_line_numbers() -> None:
    text = 'external_id,name\rA1,"two\rlines"\rA2,B\r'
    result = validate_all("accounts", csv_bytes(text))
    assert [(r.line, r.name) for r in result.records] == [(2, "two\rlines"), (4, "B")]


def test_empty_file() -> None:
    result = validate_all("accounts", io.BytesIO(b""))
    assert result.report.file_error is not None
    assert result.report.file_error.code == "empty_file"
    with pytest.raises(ImportFileError):
        open_rows(io.BytesIO(b"\n\n  \n"))


def test_header_only_file_is_valid_with_a_warning() -> None:
    result = validate_all("accounts", csv_bytes("external_id,name\r\n"))
    assert result.report.ok
    assert (result.report.rows_total, result.records) == (0, [])
    assert warning_codes(result.report) == ["no_data_rows"]


def test_blank_rows_are_skipped_and_counted() -> None:
    text = "external_id,name\n\nA1,Acme\n,,\n , \nA2,Beta\n"
    result = validate_all("accounts", csv_bytes(text))
    assert [r.line for r in result.records] == [3, 6]
    assert (result.report.rows_total, result.report.rows_blank) == (2, 3)


def test_ragged_rows() -> None:
    text = "external_id,name,plan\nA1,Acme\nA2,Beta,pro,extra\nA3,Gamma,pro,,\nA4,Delta,basic\n"
    result = validate_all("accounts", csv_bytes(text), on_errors="skip_rows")
    assert codes(result.report) == [(2, "", "too_few_cells"), (3, "", "too_many_cells")]
    assert result.report.errors[0].params == {"expected": 3, "found": 2}
    assert [r.external_id for r in result.records] == ["A3", "A4"]


def test_nul_byte_in_the_sample_is_a_file_error() -> None:
    result = validate_all("accounts", io.BytesIO(b"external_id,name\nA1,Ac\x00me\n"))
    assert result.report.file_error is not None
    assert (result.report.file_error.code, result.report.file_error.params["line"]) == (
        "nul_byte", 2
    )  # fmt: skip


def test_nul_byte_later_in_the_file_names_the_line() -> None:
    body = "external_id,name\n" + "".join(f"A{i},x\n" for i in range(20_000))
    data = body.encode() + b"B\x00,y\n"
    with pytest.raises(ImportFileError) as caught:
        list(validate_stream("accounts", io.BytesIO(data)))
    assert (caught.value.code, caught.value.params["line"]) == ("nul_byte", 20_002)


def test_utf16_without_bom_is_refused() -> None:
    result = validate_all("accounts", csv_bytes("external_id,name\nA1,x\n", "utf-16-le"))
    assert result.report.file_error is not None
    assert result.report.file_error.code == "nul_byte"


def test_excel_workbook_renamed_csv_is_refused() -> None:
    with pytest.raises(ImportFileError) as caught:
        open_rows(io.BytesIO(b"PK\x03\x04\x14\x00\x06\x00rest-of-zip"))
    assert caught.value.code == "not_csv"


def test_broken_quoting_is_a_file_error_naming_the_line() -> None:
    text = 'external_id,name\nA1,ok\nA2,"bro"ken\nA3,ok\n'
    with pytest.raises(ImportFileError) as caught:
        list(validate_stream("accounts", csv_bytes(text)))
    assert (caught.value.code, caught.value.params["line"]) == ("malformed_csv", 3)


def test_too_large_seekable_file_fails_before_reading() -> None:
    data = io.BytesIO(b"external_id,name\n" + b"A1,x\n" * 1000)
    with pytest.raises(ImportFileError) as caught:
        open_rows(data, max_bytes=1000)
    assert (caught.value.code, caught.value.params["max_bytes"]) == ("too_large", 1000)
    assert data.tell() == 0


def test_too_large_stream_stops_reading_at_the_limit() -> None:
    served = 0

    def chunks() -> Iterator[bytes]:
        nonlocal served
        yield b"external_id,name\n"
        while True:
            served += 1
            yield b"A1,x\n" * 10_000

    stream = validate_stream("accounts", ChunkedRaw(chunks()), max_bytes=300_000)
    with pytest.raises(ImportFileError) as caught:
        list(stream)
    assert caught.value.code == "too_large"
    assert served * 50_000 < 400_000  # stopped within a chunk of the limit
    result = validate_all("accounts", ChunkedRaw(chunks()), max_bytes=100_000)
    assert result.report.file_error is not None
    assert result.records == []


# --------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------


def test_mixed_date_formats_in_one_file() -> None:
    text = (
        "external_id,name,contract_start,renewal_date\n"
        "A1,a,2025-03-01,2026-03-01T10:00:00Z\n"
        "A2,b,2025/3/1,2026.03.01\n"
        "A3,c,2025年3月1日,03/01/2026\n"
        "A4,d,3/1/2025 10:30 PM,2026-03-01 23:59:59+08:00\n"
    )
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.ok, result.report.errors
    for record in result.records:
        assert (record.contract_start, record.renewal_date) == (date(2025, 3, 1), date(2026, 3, 1))
    assert warning_codes(result.report) == ["ambiguous_dates"]  # 03/01/2026 and 3/1/2025
    assert result.report.warnings[0].params["count"] == 2


def test_ambiguous_dates_follow_day_first_and_are_reported() -> None:
    text = "account_external_id,day,metric,value\nA,01/03/2026,m,1\nA,02/03/2026,m,1\n"
    us = validate_all("usage_events", csv_bytes(text))
    assert [r.day for r in us.records] == [date(2026, 1, 3), date(2026, 2, 3)]
    warning = us.report.warnings[-1]
    assert (warning.code, warning.params["count"], warning.params["line"]) == (
        "ambiguous_dates", 2, 2
    )  # fmt: skip
    eu = validate_all("usage_events", csv_bytes(text), day_first=True)
    assert [r.day for r in eu.records] == [date(2026, 3, 1), date(2026, 3, 2)]


def test_unambiguous_dates_are_read_the_only_way_they_can_be() -> None:
    text = "account_external_id,day,metric,value\nA,12/25/2025,m,1\nA,13/01/2026,m,1\n"
    result = validate_all("usage_events", csv_bytes(text))
    assert [r.day for r in result.records] == [date(2025, 12, 25), date(2026, 1, 13)]
    assert result.report.ok and warning_codes(result.report) == []


def test_dotted_dates_are_day_first() -> None:
    text = "account_external_id,day,metric,value\nA,11.08.2024,m,1\nA,1.3.2025,m,1\n"
    result = validate_all("usage_events", csv_bytes(text))
    assert [r.day for r in result.records] == [date(2024, 8, 11), date(2025, 3, 1)]
    assert warning_codes(result.report) == []


def test_a_column_proven_day_first_reads_its_ambiguous_dates_day_first() -> None:
    # 06/11/2025 comes first; line 4 (13/01/2024) shows the column is day first.
    text = (
        "account_external_id,day,metric,value\n"
        "A,06/11/2025,m,1\nA,02/03/2024,m,1\nA,13/01/2024,m,1\n"
    )
    for source in (csv_bytes(text), ChunkedRaw(iter([text.encode()]))):
        result = validate_all("usage_events", source)
        if isinstance(source, ChunkedRaw):  # cannot read twice: refused, not wrong
            assert result.report.file_error.code == "date_order_changed"
            assert not result.records
            continue
        assert [r.day for r in result.records] == [
            date(2025, 11, 6), date(2024, 3, 2), date(2024, 1, 13)
        ]  # fmt: skip
        [warning] = result.report.warnings
        assert (warning.code, warning.params["line"]) == ("date_order_from_file", 4)
    # Each column on its own: renewal_date proves month first, contract_start day first.
    text = (
        "external_id,name,contract_start,renewal_date\n"
        "A1,a,06/11/2024,06/11/2027\nA2,b,13/01/2024,01/13/2027\n"
    )
    result = validate_all("accounts", csv_bytes(text))
    assert [(r.contract_start, r.renewal_date) for r in result.records] == [
        (date(2024, 11, 6), date(2027, 6, 11)), (date(2024, 1, 13), date(2027, 1, 13))
    ]  # fmt: skip


def test_a_column_with_both_orders_makes_its_ambiguous_dates_row_errors() -> None:
    text = (
        "account_external_id,day,metric,value\n"
        "A,13/01/2024,m,1\nA,06/11/2024,m,1\nA,01/13/2024,m,1\nA,2024-05-05,m,1\n"
    )
    result = validate_all("usage_events", csv_bytes(text), on_errors="skip_rows")
    assert codes(result.report) == [(3, "day", "ambiguous_date")]
    assert "line 2" in result.report.errors[0].message
    assert "line 4" in result.report.errors[0].message
    assert [r.day for r in result.records] == [
        date(2024, 1, 13), date(2024, 1, 13), date(2024, 5, 5)
    ]  # fmt: skip


NOW = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("kind", "text", "field"),
    [
        ("usage_events", "account_external_id,day,metric,value\nA,2099-01-01,m,1\n", "day"),
        ("tickets", "external_id,account_external_id,opened_at\nT1,A,2099-01-01\n",
         "opened_at"),
        ("tickets", "external_id,account_external_id,opened_at,closed_at\n"
         "T1,A,2026-03-01,2026-03-12 10:00\n", "closed_at"),
        ("nps_responses", "external_id,account_external_id,score,responded_at\n"
         "N1,A,3,2099-01-01\n", "responded_at"),
        ("invoices", "external_id,account_external_id,amount,order_date\nI1,A,10,12/03/2026\n",
         "order_date"),
        ("invoices", "external_id,account_external_id,amount,order_date,paid_date\n"
         "I1,A,10,2026-03-01,2026-03-12\n", "paid_date"),
    ],
)  # fmt: skip
def test_event_dates_in_the_future_are_row_errors(kind: str, text: str, field: str) -> None:
    result = validate_all(kind, csv_bytes(text), now=NOW)
    assert codes(result.report) == [(2, field, "in_future")]
    assert result.report.errors[0].message == "date is in the future"
    assert result.report.errors[0].column == field and not result.records


def test_future_tolerance_and_dates_that_may_lie_ahead() -> None:
    tomorrow = "account_external_id,day,metric,value\nA,2026-03-11,m,1\n"  # a time zone ahead
    assert validate_all("usage_events", csv_bytes(tomorrow), now=NOW).report.ok
    opened = "external_id,account_external_id,opened_at\nT1,A,2026-03-11T11:59:00Z\n"
    assert validate_all("tickets", csv_bytes(opened), now=NOW).report.ok
    ahead = (
        "external_id,account_external_id,amount,order_date,due_date\nI1,A,10,2026-03-01,"
        "2099-01-01\n"
    )
    assert validate_all("invoices", csv_bytes(ahead), now=NOW).report.ok
    renewal = "external_id,name,contract_start,renewal_date\nA1,a,2027-01-01,2099-01-01\n"
    assert validate_all("accounts", csv_bytes(renewal), now=NOW).report.ok


@pytest.mark.parametrize(
    ("value", "code"),
    [("2026-02-30", "invalid_date"), ("tomorrow", "invalid_date"), ("3/1/26", "two_digit_year"),
     ("0001-01-01", "out_of_range"), ("13/13/2026", "invalid_date"),
     ("2026/3/1 25:00", "invalid_date"), ("=TODAY()", "formula")],
)  # fmt: skip
def test_invalid_dates_are_row_errors(value: str, code: str) -> None:
    text = f"account_external_id,day,metric,value\nA,{value},m,1\n"
    result = validate_all("usage_events", csv_bytes(text))
    assert codes(result.report) == [(2, "day", code)]
    assert result.report.errors[0].value == value


def test_datetimes_are_aware_utc_and_naive_ones_use_assume_tz() -> None:
    text = (
        "external_id,account_external_id,opened_at,closed_at\n"
        "T1,A,2026-03-01T10:00:00+08:00,2026-03-02\n"
        "T2,A,2026/3/1 10:00,\n"
    )
    utc = validate_all("tickets", csv_bytes(text)).records
    assert utc[0].opened_at == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert utc[0].closed_at == datetime(2026, 3, 2, tzinfo=UTC)
    assert utc[1].opened_at == datetime(2026, 3, 1, 10, tzinfo=UTC)
    assert utc[1].opened_at.tzinfo is UTC
    shanghai = validate_all("tickets", csv_bytes(text), assume_tz=ZoneInfo("Asia/Shanghai"))
    assert shanghai.records[0].opened_at == utc[0].opened_at  # an explicit offset wins
    assert shanghai.records[1].opened_at == datetime(2026, 3, 1, 2, tzinfo=UTC)
    assert shanghai.records[1].opened_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("written", "expected"),
    [("1,234,567.89", "1234567.89"), ("1 234 567,89", "1234567.89"),
     ("1.234.567,89", "1234567.89"), ("1\u00a0234,5", "1234.5"), ("1'234.50", "1234.50"),
     ("$1,234", "1234"), ("¥1,234.5", "1234.5"), ("￥88", "88"), ("€ 1.234,56", "1234.56"),
     ("1.234,56 €", "1234.56"), ("100元", "100"), ("USD 1,000", "1000"), ("1,234", "1234"),
     ("12,5", "12.5"), ("1.234", "1.234"), ("0.5", "0.5"), ('="1,000"', "1000")],
)  # fmt: skip
def test_money_formats(written: str, expected: str) -> None:
    text = f'external_id,name,arr\nA1,Acme,"{written.replace(chr(34), chr(34) * 2)}"\n'
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.ok, result.report.errors
    assert result.records[0].arr == Decimal(expected)


@pytest.mark.parametrize(
    ("written", "code"),
    [("-5", "negative"), ("(1,234.00)", "negative"), ("-$5", "negative"),
     ("1,2,3", "not_a_number"), ("12,34,567", "not_a_number"), ("abc", "not_a_number"),
     ("NaN", "not_a_number"), ("Infinity", "not_a_number"), ("1e30", "out_of_range"),
     ("=1+2", "formula"), ("=SUM(A1:A3)", "formula"), ("--5", "not_a_number")],
)  # fmt: skip
def test_bad_money_is_a_row_error(written: str, code: str) -> None:
    text = f'external_id,name,arr\nA1,Acme,"{written}"\nA2,Beta,5\n'
    result = validate_all("accounts", csv_bytes(text), on_errors="skip_rows")
    assert codes(result.report) == [(2, "arr", code)]
    assert [r.external_id for r in result.records] == ["A2"]


def test_negative_usage_values_are_allowed() -> None:
    text = "account_external_id,day,metric,value\nA,2026-01-01,delta,-3.5\n"
    assert validate_all("usage_events", csv_bytes(text)).records[0].value == Decimal("-3.5")


def test_excel_formula_cells_are_text_not_formulas() -> None:
    text = (
        "external_id,name,plan\n"
        '="00123","=HYPERLINK(""http://evil"")",pro\n'
        '="00124",@SUM(1),="Gold"\n'
    )
    result = validate_all("accounts", csv_bytes(text))
    assert result.report.ok
    first, second = result.records
    assert first.external_id == "00123"
    assert first.name == '=HYPERLINK("http://evil")'
    assert (second.name, second.plan) == ("@SUM(1)", "Gold")
    assert result.report.warnings[-1].code == "formula_text"
    bad = validate_all("accounts", csv_bytes("external_id,name\n=A1+1,x\n"))
    assert codes(bad.report) == [(2, "external_id", "formula")]


def test_emails_roles_severity_scores_and_domains() -> None:
    contacts = (
        "外部编号,客户编号,邮箱,姓名,角色\n"
        "C1,A1, Li.Lei@Example.COM ,李雷,决策者\n"
        "C2,A1,han@example.com,韩梅梅,Champion\n"
        "C3,A1,lucy@example.com,,end user\n"
        "C4,A1,not an email,,boss\n"
        "C5,A1,a@b@c,,\n"
    )
    result = validate_all("contacts", csv_bytes(contacts), on_errors="skip_rows")
    assert [(r.email, r.role) for r in result.records] == [
        ("li.lei@example.com", "decision_maker"), ("han@example.com", "champion"),
        ("lucy@example.com", "user"),
    ]  # fmt: skip
    assert codes(result.report) == [
        (5, "email", "invalid_email"), (5, "role", "invalid_choice"), (6, "email", "invalid_email")
    ]  # fmt: skip

    tickets = (
        "external_id,account_external_id,opened_at,severity,csat\n"
        "T1,A,2026-01-01,urgent,5\nT2,A,2026-01-01,4,1\nT3,A,2026-01-01,高,\n"
        "T4,A,2026-01-01,P3,4.0\nT5,A,2026-01-01,9,6\nT6,A,2026-01-01,,4.5\n"
    )
    result = validate_all("tickets", csv_bytes(tickets), on_errors="skip_rows")
    assert [(r.severity, r.csat) for r in result.records] == [(1, 5), (4, 1), (2, None), (3, 4)]
    assert codes(result.report) == [
        (6, "severity", "invalid_choice"), (6, "csat", "out_of_range"),
        (7, "csat", "not_an_integer"),
    ]  # fmt: skip

    nps = (
        "external_id,account_external_id,score,responded_at,comment\n"
        "N1,A,10,2026-01-01,great\nN2,A,0,2026-01-01,\nN3,A,11,2026-01-01,\nN4,A,,2026-01-01,\n"
    )
    result = validate_all("nps_responses", csv_bytes(nps), on_errors="skip_rows")
    assert [r.score for r in result.records] == [10, 0]
    assert codes(result.report) == [(4, "score", "out_of_range"), (5, "score", "required")]

    accounts = (
        "external_id,name,domain\nA1,a,https://www.Example.com/about\nA2,b,acme.cn\nA3,c,nodot\n"
    )
    result = validate_all("accounts", csv_bytes(accounts), on_errors="skip_rows")
    assert [r.domain for r in result.records] == ["example.com", "acme.cn"]
    assert codes(result.report) == [(4, "domain", "invalid_domain")]


def test_empty_optional_cells_are_none_and_required_ones_are_errors() -> None:
    text = "external_id,name,arr,plan\nA1,Acme,,  \n  ,Beta,,\nA3,   ,,\n"
    result = validate_all("accounts", csv_bytes(text), on_errors="skip_rows")
    assert (result.records[0].arr, result.records[0].plan) == (None, None)
    assert codes(result.report) == [(3, "external_id", "required"), (4, "name", "required")]


def test_cross_field_checks() -> None:
    text = (
        "external_id,account_external_id,opened_at,closed_at\n"
        "T1,A,2026-03-02,2026-03-01\nT2,A,2026-03-01 10:00,2026-03-01 10:00\n"
    )
    result = validate_all("tickets", csv_bytes(text), on_errors="skip_rows")
    assert codes(result.report) == [(2, "closed_at", "closed_before_opened")]
    assert isinstance(result.records[0], TicketRow)
    accounts = "external_id,name,contract_start,renewal_date\nA1,a,2026-01-01,2025-01-01\n"
    assert codes(validate_all("accounts", csv_bytes(accounts)).report) == [
        (2, "renewal_date", "before_contract_start")
    ]


def test_too_long_text_is_an_error() -> None:
    text = f"external_id,name\nA1,{'x' * 201}\n"
    result = validate_all("accounts", csv_bytes(text))
    assert codes(result.report) == [(2, "name", "too_long")]
    assert len(result.report.errors[0].value) == 200


# --------------------------------------------------------------------------------------------
# Duplicates, policies, error caps, the error CSV
# --------------------------------------------------------------------------------------------


def test_duplicate_ids_are_errors_on_later_lines_naming_the_first() -> None:
    text = "external_id,name\nA1,first\nA2,x\nA1,second\nA1,third\n"
    result = validate_all("accounts", csv_bytes(text), on_errors="skip_rows")
    assert codes(result.report) == [(4, "external_id", "duplicate_id"),
                                    (5, "external_id", "duplicate_id")]  # fmt: skip
    assert [e.params["first_line"] for e in result.report.errors] == [2, 2]
    assert "line 2" in result.report.errors[0].message
    assert [r.name for r in result.records] == ["first", "x"]


def test_reject_file_policy_imports_nothing_when_any_row_fails() -> None:
    text = "external_id,name,arr\nA1,a,1\nA2,b,-1\nA3,c,3\n"
    rejected = validate_all("accounts", csv_bytes(text))
    assert rejected.records == [] and not rejected.importable
    report = rejected.report
    assert (report.rows_total, report.rows_valid, report.rows_invalid) == (3, 2, 1)
    assert not report.ok and report.complete
    skipped = validate_all("accounts", csv_bytes(text), on_errors="skip_rows")
    assert [r.external_id for r in skipped.records] == ["A1", "A3"]
    with pytest.raises(ValueError, match="on_errors"):
        validate_all("accounts", csv_bytes(text), on_errors="ignore")  # type: ignore[arg-type]


def test_every_cell_is_checked_and_errors_are_capped_but_counted() -> None:
    text = "external_id,name,arr,renewal_date\n" + "A,,-1,never\n" * 50
    result = validate_all("accounts", csv_bytes(text), max_errors=10)
    report = result.report
    assert report.error_count == 50 * 3 + 49  # name, arr, date on each row; 49 duplicates
    assert len(report.errors) == 10 and report.errors_truncated
    assert [e.field for e in report.errors[:4]] == ["name", "arr", "renewal_date", "name"]
    rows = list(csv.reader(io.StringIO(errors_csv(report).decode("utf-8-sig"))))
    assert rows[-1][2:4] == ["errors_truncated", "189 more errors not listed"]


def test_error_csv_round_trip_is_excel_friendly_and_formula_safe() -> None:
    text = '外部编号,名称,ARR\nA1,"=cmd|\' /C calc\'!A0",-1\nA2,北京,"@SUM(1)"\nA3,x,+5e\n'
    report = validate_all("accounts", csv_bytes(text)).report
    data = errors_csv(report)
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["line", "column", "code", "message", "value"]
    assert rows[1:] == [
        ["2", "ARR", "negative", "must not be negative", "'-1"],
        ["3", "ARR", "not_a_number", "not a number", "'@SUM(1)"],
        ["4", "ARR", "not_a_number", "not a number", "'+5e"],
    ]
    for row in rows[1:]:
        assert not row[4].startswith(("=", "+", "-", "@", "\t", "\r"))


def test_error_csv_of_a_file_error() -> None:
    report = validate_all("accounts", io.BytesIO(b"external_id,name\nA,\xff\n")).report
    rows = list(csv.reader(io.StringIO(errors_csv(report).decode("utf-8-sig"))))
    assert rows[1][:3] == ["2", "file", "undecodable"]


# --------------------------------------------------------------------------------------------
# Streaming
# --------------------------------------------------------------------------------------------


def test_row_stream_dicts_and_line_numbers() -> None:
    stream = open_rows(csv_bytes('a,b\n1,"x\ny"\n\n2,z\n'))
    assert (stream.header, stream.header_line, stream.delimiter) == (["a", "b"], 1, ",")
    assert list(stream) == [(2, {"a": "1", "b": "x\ny"}), (5, {"a": "2", "b": "z"})]
    assert stream.blank_rows == 1
    with pytest.raises(RuntimeError):
        list(stream.rows())


def test_batches_stream_while_the_report_accumulates() -> None:
    text = "account_external_id,day,metric,value\n" + "A,2026-01-01,m,1\nA,bad,m,1\n" * 25
    stream = validate_stream("usage_events", csv_bytes(text))
    assert stream.columns == ("account_external_id", "day", "metric", "value")
    seen = [(len(batch), stream.report.complete) for batch in stream.batches(10)]
    assert seen == [(10, False), (10, False), (5, True)]  # the last batch follows the end
    assert stream.report.complete and stream.report.error_count == 25


def usage_chunks(rows: int) -> Iterator[bytes]:
    """A usage_events CSV of ``rows`` rows (37 bytes each), made on the fly in 37 KB chunks."""
    block = "".join(f"ACC-{i:04d},2026-03-{1 + i % 28:02d},logins,{i}\n" for i in range(1000))
    payload = block.encode()
    yield b"account_external_id,day,metric,value\n"
    for _ in range(rows // 1000):
        yield payload


def traced_peak(rows: int) -> int:
    tracemalloc.start()
    try:
        stream = validate_stream("usage_events", ChunkedRaw(usage_chunks(rows)), max_bytes=None)
        count = sum(len(batch) for batch in stream.batches(1000))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == rows and stream.report.ok
    return peak


def test_peak_memory_does_not_grow_with_the_row_count() -> None:
    small, large = traced_peak(4_000), traced_peak(24_000)
    assert small < 3_000_000, small
    assert large < small + 500_000, (small, large)  # 6x the rows, the same peak


def rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_one_million_rows_stream_in_bounded_memory() -> None:
    """1M rows (37 MB of CSV) from a generator-backed file; resident memory stays flat.

    (tracemalloc slows this loop about 18 times, so the 1M-row run samples RSS instead and the
    test above uses tracemalloc on smaller files.)
    """
    rows = 1_000_000
    stream = validate_stream("usage_events", ChunkedRaw(usage_chunks(rows)), max_bytes=None)
    baseline = rss_bytes()
    count = highest = 0
    for batch in stream.batches(10_000):
        count += len(batch)
        highest = max(highest, rss_bytes())
    assert count == rows and stream.report.ok
    assert stream.report.rows_total == rows
    assert highest - baseline < 30_000_000, highest - baseline  # a list of 1M rows: ~250 MB


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------

amounts = st.decimals(min_value=0, max_value=10**13, places=2, allow_nan=False)


def _group(integer: str, sep: str) -> str:
    head = len(integer) % 3 or 3
    return sep.join([integer[:head]] + [integer[i : i + 3] for i in range(head, len(integer), 3)])


@settings(max_examples=300, deadline=None)
@given(
    amount=amounts,
    style=st.sampled_from([(",", "."), (" ", ","), (".", ","), ("\u00a0", "."), ("'", "."),
                           ("", "."), ("", ",")]),
    currency=st.sampled_from(["", "$", "¥", "€ ", " 元", "USD "]),
)  # fmt: skip
def test_any_grouped_number_parses_back(
    amount: Decimal, style: tuple[str, str], currency: str
) -> None:
    group, decimal_sep = style
    integer, _, fraction = f"{amount:.2f}".partition(".")
    written = _group(integer, group) + decimal_sep + fraction
    if currency.strip() == "元":
        written += currency
    else:
        written = currency + written
    assert _parse_number(written) == amount


@settings(max_examples=200, deadline=None)
@given(
    day=st.dates(min_value=date(1900, 1, 1), max_value=date(2199, 12, 31)),
    style=st.sampled_from(["{y}-{m:02d}-{d:02d}", "{y}/{m}/{d}", "{y}.{m:02d}.{d:02d}",
                           "{y}年{m}月{d}日", "{m}/{d}/{y}", "{m:02d}-{d:02d}-{y}"]),
)  # fmt: skip
def test_any_formatted_date_parses_back(day: date, style: str) -> None:
    written = style.format(y=day.year, m=day.month, d=day.day)
    assert _parse_temporal(written, _DateContext(day_first=False)) == day


@settings(max_examples=200, deadline=None)
@given(moment=st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2199, 12, 30),
                           timezones=st.sampled_from([UTC, timezone(timedelta(hours=8))])))  # fmt: skip
def test_iso_datetimes_parse_back_to_the_same_instant(moment: datetime) -> None:
    value = _parse_temporal(moment.isoformat(), _DateContext(day_first=False))
    assert value == moment


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_a_report_or_a_file_error(data: bytes) -> None:
    result = validate_all("accounts", io.BytesIO(b"external_id,name,arr\n" + data))
    report = result.report
    assert report.complete
    if report.file_error is None:
        assert report.rows_valid + report.rows_invalid == report.rows_total
        assert len(result.records) in (0, report.rows_valid)
    errors_csv(report)
