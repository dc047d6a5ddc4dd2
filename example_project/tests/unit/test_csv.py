"""CSV import and export."""

from __future__ import annotations

import io

import pytest

from inventory import Store, ValidationError, export_csv, import_csv, read_csv


def test_export_then_import_is_lossless(store: Store) -> None:
    buffer = io.StringIO()
    assert export_csv(store, buffer) == 4
    buffer.seek(0)
    with Store() as copy:
        assert import_csv(copy, buffer).created == 4
        assert copy.query() == store.query()


def test_import_updates_existing_skus(store: Store) -> None:
    rows = (
        "sku,name,price,stock,category\n"
        "KIT-002,Cutting board,19.50,5,kitchen\n"
        "NEW-1,Apron,9,1,\n"  # an empty category falls back to "general"
    )
    report = import_csv(store, io.StringIO(rows))
    assert (report.created, report.updated) == (1, 1)
    assert store.get("KIT-002").stock == 5
    assert store.get("NEW-1").category == "general"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("sku,name,price\n", "lacks column.*stock, category"),
        ("sku,name,price,stock,category\nA-1,Anvil,1.00,1,x\nA-1,Anvil,1.00,1,x\n", "duplicate"),
        ("sku,name,price,stock,category\nA-1,Anvil,1.00\n", "line 2"),
    ],
    ids=["missing-columns", "duplicate-sku", "short-row"],
)
def test_read_rejects_bad_file(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read_csv(io.StringIO(text))
