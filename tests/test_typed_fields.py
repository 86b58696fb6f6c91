"""The typed fields the loads write beside the payload: exactly the values parsing the payload
gives, or none at all for an object that would be parsed differently."""

from __future__ import annotations

import pyarrow as pa
import pytest

from ingestion.stripe_source import _batches
from ingestion.typed_fields import (
    FieldsDeclarationError,
    declaration_version,
    declared_fields,
    parse_declaration,
)

DECLARED = {
    "charges": {
        "id": "varchar",
        "amount": "bigint",
        "paid": "boolean",
        "metadata": {"resourceId": "varchar"},
        "payment_method_details": {"card": {"brand": "varchar"}},
    }
}


def charge(**fields) -> dict:
    return {"id": "ch_1", "created": 1_700_000_000, "object": "charge", **fields}


@pytest.fixture
def fields():
    return parse_declaration(DECLARED)["charges"]


def test_each_declared_field_is_a_column_named_by_its_path(fields):
    assert fields.columns == (
        "field_id",
        "field_amount",
        "field_paid",
        "field_metadata_resourceid",
        "field_payment_method_details_card_brand",
    )
    assert [f.type for f in fields.arrow_fields()] == [
        pa.string(), pa.int64(), pa.bool_(), pa.string(), pa.string(), pa.string()
    ]  # fmt: skip
    assert fields.arrow_fields()[-1].name == "fields_version"
    assert fields.version == declaration_version(DECLARED["charges"])


def test_values_are_the_objects_fields_and_null_where_it_has_none(fields):
    obj = charge(amount=1999, paid=True, metadata={"resourceId": "ord_1"},
                 payment_method_details={"card": {"brand": "visa"}})  # fmt: skip
    assert fields.values(obj) == ("ch_1", 1999, True, "ord_1", "visa")
    # Missing, null, an empty object, a null parent: null, as parsing the payload gives.
    assert fields.values(charge(metadata={}, payment_method_details=None)) == (
        "ch_1", None, None, None, None
    )  # fmt: skip


@pytest.mark.parametrize(
    "odd",
    [
        {"amount": 19.99},  # a float where a bigint is declared
        {"amount": "1999"},  # a string where a bigint is declared
        {"amount": True},  # a boolean is not an integer here
        {"amount": 2**63},  # beyond a bigint
        {"paid": 1},  # an integer where a boolean is declared
        {"metadata": {"resourceId": 42}},  # a number where a string is declared
        {"metadata": "ord_1"},  # a string where an object is declared
        {"payment_method_details": {"card": []}},
    ],
)
def test_an_object_with_a_value_of_another_type_gets_no_typed_values(fields, odd):
    """Such an object is staged from its payload, as it was before typed fields."""
    assert fields.values(charge(**odd)) is None
    [table] = _batches(iter([[charge(**odd)]]), "acct_1", {}, fields=fields)
    row = table.to_pylist()[0]
    assert row["fields_version"] is None
    assert all(row[c] is None for c in fields.columns)
    assert row["payload"].startswith('{"id":"ch_1"')


def test_a_batch_carries_the_typed_values_and_the_declarations_version(fields):
    objs = [charge(amount=500, paid=False), charge(id="ch_2", amount=700, paid=True)]
    [table] = _batches(iter([objs]), "acct_1", {}, fields=fields)
    assert table.column("field_amount").to_pylist() == [500, 700]
    assert table.column("field_paid").to_pylist() == [False, True]
    assert table.column("fields_version").to_pylist() == [fields.version] * 2
    assert table.schema.field("field_amount").type == pa.int64()


@pytest.mark.parametrize(
    "declared",
    [
        {"charges": {"fee_details": [{"amount": "bigint"}]}},  # a list is parsed by staging
        {"charges": {"exchange_rate": "double"}},
        {"charges": {"metadata": {"Resource Id": "varchar"}}},  # not a plain column name
        {"charges": {"a_b": "varchar", "a": {"b": "varchar"}}},  # one column for two fields
    ],
)
def test_a_declaration_that_cannot_be_typed_is_refused(declared):
    with pytest.raises(FieldsDeclarationError):
        parse_declaration(declared)


def test_the_dbt_projects_declaration_types_the_large_lists():
    assert set(declared_fields()) == {
        "charges", "payment_intents", "customers", "invoices", "refunds", "subscriptions"
    }  # fmt: skip


@pytest.mark.parametrize("declared", [["charges"], {"charges": "varchar"}, {"charges": {}}])
def test_a_declaration_that_is_not_a_mapping_of_fields_is_refused(declared):
    with pytest.raises(FieldsDeclarationError):
        parse_declaration(declared)


def test_an_unreadable_dbt_project_file_is_a_clear_error(tmp_path, monkeypatch):
    import ingestion.typed_fields as typed_fields

    monkeypatch.setattr(typed_fields, "DBT_PROJECT_FILE", tmp_path / "missing.yml")
    typed_fields.declared_fields.cache_clear()
    try:
        with pytest.raises(FieldsDeclarationError, match=r"missing\.yml"):
            typed_fields.declared_fields()
    finally:
        typed_fields.declared_fields.cache_clear()
