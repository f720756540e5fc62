"""Templates: what they are (``definitions``), checking attributes against one (``attributes``),
the bundled ones (``bundled``), which a caller sees (``catalog``) and records kept to them
(``conformance``)."""

from __future__ import annotations

from app.registry.templates.attributes import (
    RESTRICTED_PERMISSIONS,
    TEMPLATE_INDEX,
    TEMPLATE_TYPE,
    check,
)
from app.registry.templates.bundled import (
    BUNDLED,
    DEVICE,
    DRUG_BATCH,
    FOOD_BATCH,
    FOOD_PRODUCT,
    VACCINE_UNIT,
    VETDRUG_PACKAGE,
)
from app.registry.templates.definitions import (
    FIRST_ATTRIBUTE_INDEX,
    MAX_TEXT,
    MAX_VERSION,
    Item,
    Template,
    check_successor,
    item_json,
    parse_template,
    template_json,
)

__all__ = [
    "BUNDLED",
    "DEVICE",
    "DRUG_BATCH",
    "FIRST_ATTRIBUTE_INDEX",
    "FOOD_BATCH",
    "FOOD_PRODUCT",
    "MAX_TEXT",
    "MAX_VERSION",
    "RESTRICTED_PERMISSIONS",
    "TEMPLATE_INDEX",
    "TEMPLATE_TYPE",
    "VACCINE_UNIT",
    "VETDRUG_PACKAGE",
    "Item",
    "Template",
    "check",
    "check_successor",
    "item_json",
    "parse_template",
    "template_json",
]
