"""SNMS identifier records to and from the node's template attributes (no I/O).

An SNMS record is ``{handle, templateVersion, value: [{index, type, auth, data: {format,
value}}]}``. Each value must sit at an item's index with the item's name as its type; it
becomes the attribute of that name, checked by the node's template rules as any other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from app.errors import InvalidRequest
from app.registry.templates import TEMPLATE_INDEX, TEMPLATE_TYPE, Template
from resolver.record import Record
from resolver.text import problem

MAX_HANDLE = 255
SNMS_FIRST_INDEX = 2000  # values below it (URL, HS_ADMIN) are the node's, not SNMS data


@dataclass(frozen=True, slots=True)
class SnmsRecord:
    handle: str
    template_version: str | None
    values: list[Mapping[str, Any]]


def parse_record(body: Any) -> SnmsRecord:
    """The fields of one create or update body, or :class:`InvalidRequest` naming the field."""
    if not isinstance(body, Mapping):
        raise InvalidRequest("each record must be a JSON object {handle, templateVersion, value}")
    handle, version, values = body.get("handle"), body.get("templateVersion"), body.get("value")
    if not isinstance(handle, str) or not handle:
        raise InvalidRequest("缺少必要的请求参数: handle")
    if len(handle) > MAX_HANDLE:
        raise InvalidRequest(f"handle: at most {MAX_HANDLE} characters")
    if version is not None and not isinstance(version, str):
        raise InvalidRequest("templateVersion: must be text")
    _check_text(handle, "handle")
    _check_text(version, "templateVersion")
    if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
        raise InvalidRequest("value: must be a list of {index, type, data} objects")
    return SnmsRecord(handle, version, values)


def attributes(template: Template, values: list[Mapping[str, Any]]) -> dict[str, str]:
    """item name -> text for each value; the value at 1001 (the template, as the node
    publishes it) is taken as it is sent back, and otherwise ignored."""
    out: dict[str, str] = {}
    for position, value in enumerate(values):
        where = f"value[{position}]"
        index = value.get("index")
        if isinstance(index, str) and index.strip().isdigit():
            index = int(index)
        if type(index) is not int:
            raise InvalidRequest(f"{where}.index: must be a whole number")
        if index == TEMPLATE_INDEX and value.get("type") == TEMPLATE_TYPE:
            continue
        item = template.at(index)
        if item is None or item.disabled:
            raise InvalidRequest(f"非法操作，索引{index}在模板中不存在")
        if value.get("type") != item.name:
            raise InvalidRequest(
                f"非法操作，索引{index}的类型是{item.name}，不是{value.get('type')}"
            )
        data = value.get("data")
        if not isinstance(data, Mapping) or str(data.get("format", "")).lower() != "string":
            raise InvalidRequest(f'{where}.data: must be {{"format": "string", "value": ...}}')
        text = data.get("value")
        if isinstance(text, int | float) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str):
            raise InvalidRequest(f"{where}.data.value: must be text")
        _check_text(text, f"{where}.data.value")
        if item.name in out:
            raise InvalidRequest(f"非法操作，索引{index}出现了两次")
        out[item.name] = text
    return out


def _check_text(text: str | None, field: str) -> None:
    """The node's one check for text from outside, on each text that is kept (a record's
    other fields, such as ``auth``, are not stored)."""
    if text is not None and (found := problem(text)):
        raise InvalidRequest(f"{field}: {found}")


def detail(record: Record, template: Template | None, template_version: str) -> dict[str, Any]:
    """The detail answer: the template version at 1001 and the attribute values."""
    shown = [
        _value(TEMPLATE_INDEX, TEMPLATE_TYPE, template_version)
        if v.index == TEMPLATE_INDEX
        else _value(v.index, v.type, v.value)
        for v in record.values
        if (v.index == TEMPLATE_INDEX or v.index >= SNMS_FIRST_INDEX) and isinstance(v.value, str)
    ]
    return {
        "prefix": record.handle.partition("/")[0],
        "handle": record.handle,
        "templateVersion": template_version if template is not None else "",
        "value": shown,
        "code": "200",
    }


def _value(index: int, vtype: str, text: str) -> dict[str, Any]:
    return {"index": index, "type": vtype, "auth": "", "data": {"format": "string", "value": text}}
