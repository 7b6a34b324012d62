"""Safe uploads: every "Bad input" of the gallery issue is refused or neutralized, nothing is
stored and no temporary file is left behind."""

from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from portal.core.storage import LocalStorage
from portal.gallery import uploads
from portal.gallery.uploads import UploadRefused, normalize_filename, receive

pytestmark = pytest.mark.database_free

MANIFEST: dict[str, Any] = {
    "name": "Monthly churn report",
    "version": "1.0.0",
    "requires": {"product": ">=5.2, <6"},
    "data_sources": [{"name": "crm", "type": "postgres"}],
    "parameters": [{"name": "month", "type": "date", "label": "Month"}],
    "template": {"panels": [{"title": "Churn"}]},
}


@pytest.fixture
def store(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "gallery")


def stored_files(store: LocalStorage) -> list[Path]:
    return [p for p in store.root.rglob("*") if p.is_file()]


def refuse(store: LocalStorage, data: bytes, name: str, match: str, **kwargs: Any) -> None:
    with pytest.raises(UploadRefused, match=match) as caught:
        receive(io.BytesIO(data), name, store, **kwargs)
    assert caught.value.field == "file"
    assert caught.value.status_code == 422
    assert stored_files(store) == [], "a refused upload leaves no file, temporary or stored"


def zip_bytes(entries: dict[str, bytes], **kwargs: Any) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, **kwargs) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def xlsx_bytes(rows: list[list[Any]]) -> bytes:
    workbook = Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# --- accepted files -------------------------------------------------------------------------


def test_json_manifest_is_accepted_and_stored_by_content_hash(store: LocalStorage) -> None:
    data = json.dumps(MANIFEST).encode()
    upload = receive(io.BytesIO(data), "churn.json", store)
    assert upload.kind == "json"
    assert upload.manifest["name"] == "Monthly churn report"
    assert upload.key == f"sha256/{upload.sha256[:2]}/{upload.sha256}"
    with store.open(upload.key) as handle:
        assert handle.read() == data
    again = receive(io.BytesIO(data), "copy.json", store)
    assert again.key == upload.key
    assert len(stored_files(store)) == 1, "the same bytes are stored once"
    assert ["parameter", "month: date"] in upload.preview.rows


def test_csv_preview_shows_twenty_rows_with_formulas_neutralized(store: LocalStorage) -> None:
    lines = ["region,revenue,note"] + [f"r{i},{i},ok" for i in range(40)]
    lines[1] = 'east,"=HYPERLINK(""http://evil"",""x"")",@SUM(A1)'
    upload = receive(io.BytesIO("\n".join(lines).encode()), "sales.csv", store)
    assert upload.kind == "csv"
    assert len(upload.preview.rows) == 20
    assert upload.preview.rows[1] == ["east", '\'=HYPERLINK("http://evil","x")', "'@SUM(A1)"]


def test_xlsx_is_opened_read_only_and_previewed(store: LocalStorage) -> None:
    data = xlsx_bytes([["账户", "收入"], ["华东", 100], ["x", "=1+1"]])
    upload = receive(io.BytesIO(data), "report.xlsx", store)
    assert upload.kind == "xlsx"
    assert upload.preview.rows[0] == ["账户", "收入"]
    assert upload.preview.rows[2] == ["x", "'=1+1"]


def test_bundle_with_manifest_csv_and_workbook(store: LocalStorage) -> None:
    data = zip_bundle()
    upload = receive(io.BytesIO(data), "retail.zip", store)
    assert upload.kind == "zip"
    assert upload.manifest["version"] == "1.0.0"
    assert set(upload.preview.files) == {"manifest.json", "data/stores.csv", "sheets/kpi.xlsx"}


def zip_bundle(**extra: bytes) -> bytes:
    return zip_bytes(
        {
            "manifest.json": json.dumps(MANIFEST).encode(),
            "data/stores.csv": b"store,city\n1,Shanghai\n",
            "sheets/kpi.xlsx": xlsx_bytes([["kpi", "value"], ["nps", 42]]),
            **extra,
        }
    )


# --- bad input ------------------------------------------------------------------------------


def test_21_mb_file_is_refused_while_streaming(store: LocalStorage) -> None:
    class Counting(io.RawIOBase):
        read_bytes = 0

        def read(self, size: int = -1) -> bytes:
            self.read_bytes += size
            return b"a," * (size // 2)

    source = Counting()
    with pytest.raises(UploadRefused, match="larger than 20 MB"):
        receive(source, "big.csv", store)  # type: ignore[arg-type]
    assert source.read_bytes <= 20 * 1024 * 1024 + uploads.CHUNK_SIZE, "stopped at the limit"
    assert stored_files(store) == []


def test_high_ratio_zip_bomb_is_refused(store: LocalStorage) -> None:
    bomb = zip_bytes({"manifest.json": json.dumps(MANIFEST).encode(), "a.csv": b"0" * 5_000_000})
    refuse(store, bomb, "bomb.zip", "zip bomb")


def test_nested_zip_bomb_is_refused(store: LocalStorage) -> None:
    inner = zip_bytes({"a.csv": "".join(f"{i},{i * 7919 % 1000}\n" for i in range(50)).encode()})
    nested = zip_bytes({"manifest.json": json.dumps(MANIFEST).encode(), "inner.zip": inner})
    refuse(store, nested, "nested.zip", "Archives inside a bundle")
    disguised = zip_bytes({"manifest.json": json.dumps(MANIFEST).encode(), "x.xlsx": inner})
    refuse(store, disguised, "nested.zip", "Archives inside a bundle")
    gz = zip_bytes({"manifest.json": json.dumps(MANIFEST).encode(), "d.csv": b"\x1f\x8b\x08rest"})
    refuse(store, gz, "gz.zip", "Archives inside a bundle")


def test_too_many_entries_are_refused(store: LocalStorage) -> None:
    many = zip_bytes({f"f{i}.csv": b"a\n" for i in range(uploads.MAX_ZIP_ENTRIES + 1)})
    refuse(store, many, "many.zip", "too many entries")


@pytest.mark.parametrize(
    "name", ["../evil.csv", "/etc/passwd", "a/../../b.csv", "C:/x.csv", "a\\b.csv"]
)
def test_unsafe_paths_in_a_zip_are_refused(store: LocalStorage, name: str) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(MANIFEST))
        info = zipfile.ZipInfo("placeholder.csv")
        info.filename = name  # ZipInfo would clean the name: set it raw
        archive.writestr(info, b"a,b\n")
    refuse(store, buffer.getvalue(), "paths.zip", "unsafe path")


def test_symlink_in_a_zip_is_refused(store: LocalStorage) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("manifest.json", json.dumps(MANIFEST))
        info = zipfile.ZipInfo("link.csv")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    refuse(store, buffer.getvalue(), "links.zip", "symbolic link")


def test_duplicate_names_and_missing_manifest_are_refused(store: LocalStorage) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive, pytest.warns(UserWarning):
        archive.writestr("manifest.json", json.dumps(MANIFEST))
        archive.writestr("a.csv", "1\n")
        archive.writestr("a.csv", "2\n")
    refuse(store, buffer.getvalue(), "dup.zip", "same name twice")
    refuse(store, zip_bytes({"a.csv": b"x,y\n"}), "nomanifest.zip", "manifest.json")


def test_json_that_is_an_executable_is_refused(store: LocalStorage) -> None:
    refuse(store, b"MZ\x90\x00\x03" + b"\x00" * 200, "report.json", "Executable")
    refuse(store, b"\x7fELF\x02\x01\x01" + b"\x00" * 100, "report.json", "Executable")


def test_binary_csv_is_refused(store: LocalStorage) -> None:
    refuse(store, b"a,b\n\x00\x01\x02\xff\xfe", "data.csv", "binary")
    refuse(store, b"a,b\n\xff\xfe\xfa", "data.csv", "not UTF-8")


def test_corrupted_xlsx_is_refused(store: LocalStorage) -> None:
    good = xlsx_bytes([["a", 1]])
    refuse(store, good[: len(good) // 2], "broken.xlsx", "damaged")
    fake = zip_bytes({"[Content_Types].xml": b"<x/>", "xl/workbook.xml": b"not xml"})
    refuse(store, fake, "fake.xlsx", "not a readable .xlsx")


def test_macro_workbook_is_refused(store: LocalStorage) -> None:
    data = xlsx_bytes([["a"]])
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        entries = {i.filename: source.read(i) for i in source.infolist()}
    entries["xl/vbaProject.bin"] = b"\xd0\xcf\x11\xe0"
    refuse(store, zip_bytes(entries), "macro.xlsx", "macros")


def test_json_nested_100000_levels_is_refused(store: LocalStorage) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    refuse(store, deep, "deep.json", "nested too deeply")
    deep_object = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
    refuse(store, deep_object, "deep.json", "nested too deeply")


def test_json_that_breaks_the_manifest_schema_is_refused(store: LocalStorage) -> None:
    bad = {**MANIFEST, "version": "one"}
    refuse(store, json.dumps(bad).encode(), "m.json", "manifest schema at version")
    refuse(store, b'{"name": "x"', "m.json", "not valid UTF-8 JSON")


def test_empty_and_unknown_files_are_refused(store: LocalStorage) -> None:
    refuse(store, b"", "empty.csv", "empty")
    refuse(store, b"\x1f\x8b\x08\x00", "x.csv", "Archives")


# --- filenames ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("report\x00.exe.csv", "report.exe.csv"),
        ("../../etc/passwd", "passwd"),
        ("..", "template"),
        ("invoice\u202egpj.exe", "invoicegpj.exe"),
        ("CON.csv", "_CON.csv"),
        ("nul", "_nul"),
        ("ｒｅｐｏｒｔ.csv", "report.csv"),
        ("a<b>:c|d?.json", "a_b__c_d_.json"),
        ("", "template"),
    ],
)
def test_filenames_are_normalized(raw: str, expected: str) -> None:
    assert normalize_filename(raw) == expected


def test_long_filenames_are_cut_keeping_the_extension() -> None:
    name = normalize_filename("報" * 500 + ".csv")
    assert name.endswith(".csv")
    assert len(name.encode()) <= uploads.MAX_FILENAME_BYTES


def test_stored_name_takes_the_detected_type(store: LocalStorage) -> None:
    upload = receive(io.BytesIO(b"a,b\n1,2\n"), "evil\u202etxt.exe", store)
    assert upload.filename == "eviltxt.csv"
