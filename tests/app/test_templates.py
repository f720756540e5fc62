"""The pure template check: every item type and constraint, required, disabled and unknown
items, dates in order, visibility, and how attributes become Handle values."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidTemplate, TemplateViolation
from app.registry.templates import (
    BUNDLED,
    DEVICE,
    DRUG_BATCH,
    FOOD_PRODUCT,
    RESTRICTED_PERMISSIONS,
    TEMPLATE_INDEX,
    VETDRUG_PACKAGE,
    Template,
    check,
    check_successor,
    parse_template,
    template_json,
)

ITEMS: list[dict[str, Any]] = [
    {"index": 2000, "name": "code", "label_zh": "编码", "label_en": "Code", "type": "string",
     "required": True, "unique": True,
     "constraints": {"length": {"min": 20, "max": 20}, "pattern": r"8\d{19}",
                     "hint": "20 digits starting with 8"}},
    {"index": 2001, "name": "note", "label_zh": "备注", "label_en": "Note", "type": "string",
     "constraints": {"length": {"min": 2, "max": 5}}},
    {"index": 2002, "name": "weight", "label_zh": "重量", "label_en": "Weight", "type": "number",
     "constraints": {"range": {"min": 0, "max": 100}}},
    {"index": 2003, "name": "made", "label_zh": "生产日期", "label_en": "Made", "type": "date",
     "constraints": {"notAfter": "expires"}},
    {"index": 2004, "name": "expires", "label_zh": "有效期", "label_en": "Expires",
     "type": "date"},
    {"index": 2005, "name": "seen", "label_zh": "时间", "label_en": "Seen", "type": "datetime"},
    {"index": 2006, "name": "parent", "label_zh": "上级", "label_en": "Parent",
     "type": "reference"},
    {"index": 2007, "name": "level", "label_zh": "层级", "label_en": "Level", "type": "enum",
     "constraints": {"enum": ["box", "case"]}},
    {"index": 2008, "name": "secret", "label_zh": "机密", "label_en": "Secret", "type": "string",
     "visibility": "restricted"},
]  # fmt: skip
VALID = {"code": "81234567890123456789"}


def template(**changes: Any) -> Template:
    raw = {
        "id": "test.kind",
        "industry": "C14",
        "title": {"zh": "测试", "en": "Test"},
        "items": ITEMS,
        **changes,
    }
    return parse_template(raw, version=1)


def problems(attributes: dict[str, Any], **options: Any) -> dict[str, str]:
    checked = check(template(), {**VALID, **attributes}, **options)
    return {p["name"]: p["message"] for p in checked.problems}


def stored(attributes: dict[str, Any]) -> dict[str, Any]:
    checked = check(template(), {**VALID, **attributes}).or_raise()
    return {v.type: v for v in checked.values}


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("code", "8123", "exactly 20 characters"),
        ("code", "71234567890123456789", "must be 20 digits starting with 8"),
        ("code", 81234567890123456789, "must be text"),
        ("note", "x", "at least 2 characters"),
        ("note", "toolong", "at most 5 characters"),
        ("weight", "heavy", "must be a number"),
        ("weight", 101, "between 0 and 100"),
        ("weight", -0.5, "between 0 and 100"),
        ("weight", True, "must be a number"),
        ("made", "2026-02-30", "real date"),
        ("made", "2026/03/01", "real date"),
        ("made", "20260301", "real date"),
        ("seen", "2026-03-01T08:00:00", "time zone"),
        ("seen", "2026-13-01T08:00:00Z", "real date and time"),
        ("parent", "no-slash", "full identifier"),
        ("parent", 5, "full identifier"),
        ("level", "pallet", "one of: box, case"),
    ],
)
def test_each_type_and_constraint_refuses_bad_values(name: str, value: Any, expected: str) -> None:
    found = problems({name: value})
    assert list(found) == [name]
    assert expected in found[name]


def test_values_are_stored_as_their_canonical_text() -> None:
    values = stored(
        {
            "note": "ok",
            "weight": "12.50",
            "made": "2026-03-01",
            "expires": "2027-03-01",
            "seen": "2026-03-01T08:30:00+08:00",
            "parent": "88.999.1/case-7",
            "level": "box",
        }
    )
    assert values["weight"].value == "12.5"
    assert values["seen"].value == "2026-03-01T00:30:00Z"
    assert values["parent"].value == "88.999.1/case-7"
    assert values["parent"].references[0].handle == "88.999.1/case-7"
    assert values["parent"].references[0].index == 1
    assert values["code"].index == 2000
    assert values["code"].format == "string"
    assert values["TEMPLATE"].index == TEMPLATE_INDEX
    assert values["TEMPLATE"].value == "test.kind@1"
    assert all(v.public_read for v in values.values())


def test_every_failing_field_is_named_at_once() -> None:
    found = problems({"code": None, "weight": "x", "made": "2026-02-30", "bogus": 1})
    assert set(found) == {"code", "weight", "made", "bogus"}
    assert "required" in found["code"]
    assert "not an item of template test.kind" in found["bogus"]


def test_production_date_may_not_be_after_expiry() -> None:
    found = problems({"made": "2026-05-02", "expires": "2026-05-01"})
    assert list(found) == ["made"]
    assert "2026-05-02 is after expires" in found["made"]
    assert problems({"made": "2026-05-01", "expires": "2026-05-01"}) == {}


def test_restricted_items_and_narrowing() -> None:
    values = stored({"secret": "s", "note": "ok"})
    assert values["secret"].permissions == RESTRICTED_PERMISSIONS
    assert not values["secret"].public_read
    narrowed = check(template(), {**VALID, "note": "ok"}, visibility={"note": "restricted"})
    assert not next(v for v in narrowed.values if v.type == "note").public_read
    found = problems({"secret": "s"}, visibility={"secret": "public", "nope": "restricted"})
    assert "cannot be made public" in found["secret"]
    assert "not an item" in found["nope"]


def test_disabled_items_are_refused_unless_kept_unchanged() -> None:
    disabled = template().with_disabled("note", True)
    refused = check(disabled, {**VALID, "note": "ok"})
    assert [p["name"] for p in refused.problems] == ["note"]
    assert "disabled" in refused.problems[0]["message"]
    assert check(disabled, {**VALID, "note": "ok"}, unchanged=["note"]).problems == ()
    required_off = template().with_disabled("code", True)
    assert check(required_off, {}).problems == ()


def test_unique_items_produce_claims() -> None:
    checked = check(template(), VALID)
    assert [(c.template_id, c.item_name, c.value) for c in checked.claims] == [
        ("test.kind", "code", "81234567890123456789")
    ]


def test_violation_carries_the_fields() -> None:
    with pytest.raises(TemplateViolation) as caught:
        check(template(), {}).or_raise()
    assert caught.value.fields == [{"name": "code", "message": "is required (Code / 编码)"}]


@pytest.mark.parametrize("raw", BUNDLED, ids=[t["id"] for t in BUNDLED])
def test_bundled_templates_and_their_examples_are_valid(raw: dict[str, Any]) -> None:
    bundled = parse_template(raw, version=1)
    assert check(bundled, bundled.example).problems == ()
    assert parse_template(template_json(bundled), version=1) == bundled


def test_bundled_codes_are_realistic() -> None:
    drug = parse_template(DRUG_BATCH, version=1)
    assert check(drug, {**drug.example, "traceCode": "8123456789012345678"}).problems
    vet = parse_template(VETDRUG_PACKAGE, version=1)
    bad_date = {**vet.example, "traceCode": "202613011234500000000042"}
    assert [p["name"] for p in check(vet, bad_date).problems] == ["traceCode"]
    late = {**drug.example, "productionDate": "2028-03-01"}
    assert [p["name"] for p in check(drug, late).problems] == ["productionDate"]


def test_device_template_has_the_agreed_items() -> None:
    device = parse_template(DEVICE, version=1)
    assert [(i.index, i.name, i.type) for i in device.items] == [
        (2000, "hardwareId", "string"),
        (2001, "hardwareIdType", "enum"),
        (2002, "model", "string"),
        (2003, "vendor", "string"),
        (2004, "location", "string"),
        (2005, "network", "enum"),
        (2006, "firstSeen", "datetime"),
        (2007, "lastSeen", "datetime"),
        (2008, "online", "enum"),
        (2009, "batteryLevel", "number"),
        (2010, "gatewayId", "string"),
    ]
    assert device.item("hardwareId").unique  # type: ignore[union-attr]
    online = check(device, {**device.example, "online": True, "batteryLevel": 87})
    assert online.problems == ()


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"items": []}, "items must be a non-empty list"),
        ({"industry": "food"}, "GB/T 4754"),
        ({"title": {"zh": "x"}}, "title"),
        ({"items": [{**ITEMS[0], "index": 1999}]}, "index must be a whole number from 2000"),
        ({"items": [ITEMS[0], {**ITEMS[1], "index": 2000}]}, "index used by more than one"),
        ({"items": [{**ITEMS[7], "constraints": {}}]}, "an enum item needs"),
        ({"items": [{**ITEMS[0], "constraints": {"pattern": "("}}]}, "not a valid regular"),
        ({"items": [{**ITEMS[3]}]}, "notAfter must name another date item"),
        ({"items": [{**ITEMS[0], "type": "blob"}]}, "type must be one of"),
        ({"id": "bad id!"}, "template id"),
    ],
)
def test_malformed_templates_are_refused(change: dict[str, Any], expected: str) -> None:
    with pytest.raises(InvalidTemplate, match=expected):
        template(**change)


def test_a_new_version_keeps_every_item() -> None:
    first = template()
    check_successor(first, template(items=[*ITEMS, {**ITEMS[1], "index": 2009, "name": "x"}]))
    with pytest.raises(InvalidTemplate, match="must keep every item"):
        check_successor(first, template(items=ITEMS[1:]))
    with pytest.raises(InvalidTemplate, match="must keep every item"):
        check_successor(first, template(items=[{**ITEMS[0], "type": "number"}, *ITEMS[1:]]))


def test_display_must_name_an_item_and_show_scans_is_a_flag() -> None:
    wrong = {**FOOD_PRODUCT, "display": "colour", "showScans": "yes"}
    with pytest.raises(InvalidTemplate) as refused:
        parse_template(wrong, version=1)
    assert "display must name one of the items" in refused.value.message
    assert "showScans must be true or false" in refused.value.message
    shown = parse_template({**FOOD_PRODUCT, "showScans": True}, version=1)
    assert (shown.display, shown.show_scans) == ("productName", True)
