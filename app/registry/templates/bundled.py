"""The industry templates every node starts with (docs/domain.md section 6).

Written as the JSON the API accepts, so each one documents ``POST /api/v1/templates`` too.
Each carries an ``example`` that satisfies it (the README and the tests use them).
"""

from __future__ import annotations

from typing import Any

BUNDLED_VERSION = 1
DRUG_TRACE_CODE: dict[str, Any] = {"pattern": r"8\d{19}", "hint": "20 digits starting with 8"}
# Veterinary drug codes: production date (8 digits, YYYYMMDD) + enterprise (5) + random (11).
VETDRUG_CODE: dict[str, Any] = {
    "pattern": r"(19|20)\d\d(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{16}",
    "hint": "24 digits: production date YYYYMMDD, enterprise code (5), serial (11)",
}
FOOD_LICENCE: dict[str, Any] = {
    "pattern": r"SC\d{14}",
    "hint": "SC followed by 14 digits (食品生产许可证编号)",
}
DRUG_APPROVAL: dict[str, Any] = {
    "pattern": r"国药准字[HZSJBT]\d{8}",
    "hint": "国药准字 followed by H, Z, S, J, B or T and 8 digits, e.g. 国药准字S20230011",
}
VETDRUG_APPROVAL: dict[str, Any] = {"length": {"min": 4, "max": 40}}


def _item(
    index: int,
    name: str,
    zh: str,
    en: str,
    kind: str = "string",
    *,
    required: bool = False,
    unique: bool = False,
    restricted: bool = False,
    **constraints: Any,
) -> dict[str, Any]:
    return {
        "index": index,
        "name": name,
        "label_zh": zh,
        "label_en": en,
        "type": kind,
        "required": required,
        "unique": unique,
        "visibility": "restricted" if restricted else "public",
        "constraints": constraints,
    }


def _dates(production: int, expiry: int) -> list[dict[str, Any]]:
    return [
        _item(production, "productionDate", "生产日期", "Production date", "date",
              required=True, notAfter="expiryDate"),
        _item(expiry, "expiryDate", "有效期至", "Expiry date", "date", required=True),
    ]  # fmt: skip


FOOD_PRODUCT: dict[str, Any] = {
    "id": "food.product",
    "display": "productName",
    "industry": "C14",
    "title": {"zh": "食品产品", "en": "Food product"},
    "items": [
        _item(2000, "productName", "产品名称", "Product name", required=True, length={"max": 100}),
        _item(2001, "licenceNumber", "生产许可证编号", "Production licence number",
              required=True, **FOOD_LICENCE),
        _item(2002, "standardNumber", "产品标准号", "Product standard number",
              length={"max": 40}),
        _item(2003, "manufacturer", "生产者名称", "Manufacturer", required=True),
        _item(2004, "manufacturerAddress", "生产者地址", "Manufacturer address"),
        _item(2005, "ingredients", "配料", "Ingredients"),
        _item(2006, "additives", "食品添加剂", "Food additives"),
        _item(2007, "shelfLifeDays", "保质期(天)", "Shelf life (days)", "number",
              required=True, range={"min": 1, "max": 3650}),
        _item(2008, "storageConditions", "贮存条件", "Storage conditions"),
        _item(2009, "origin", "产地", "Origin"),
    ],
    "example": {
        "productName": "草原纯牛奶 250mL",
        "licenceNumber": "SC10615010200123",
        "standardNumber": "GB 25190",
        "manufacturer": "内蒙古乳业有限公司",
        "manufacturerAddress": "内蒙古呼和浩特市金川开发区",
        "ingredients": "生牛乳",
        "shelfLifeDays": 180,
        "storageConditions": "常温避光",
        "origin": "内蒙古呼和浩特",
    },
}  # fmt: skip

FOOD_BATCH: dict[str, Any] = {
    "id": "food.batch",
    "display": "product",
    "industry": "C14",
    "title": {"zh": "食品批次", "en": "Food batch"},
    "items": [
        _item(2000, "product", "产品", "Product (its identifier)", "reference", required=True),
        _item(2001, "batchNumber", "批号", "Batch number", required=True, length={"max": 40}),
        *_dates(2002, 2003),
        _item(2004, "quantity", "数量", "Quantity", "number", range={"min": 0}),
        _item(2005, "packagingLevel", "包装层级", "Packaging level", "enum",
              enum=["item", "case", "pallet"]),
        _item(2006, "parent", "上级包装", "Parent package (case or pallet)", "reference"),
        _item(2007, "inspectionReport", "检验报告", "Inspection report (its identifier)",
              "reference", restricted=True),
        _item(2008, "origin", "产地", "Origin"),
    ],
    "example": {
        "product": "88.999.1/PRODUCT-MILK-250",
        "batchNumber": "B20260301-01",
        "productionDate": "2026-03-01",
        "expiryDate": "2026-08-28",
        "quantity": 12000,
        "packagingLevel": "pallet",
        "inspectionReport": "88.999.1/QC-20260301-01",
        "origin": "内蒙古呼和浩特",
    },
}  # fmt: skip

DRUG_BATCH: dict[str, Any] = {
    "id": "drug.batch",
    "display": "genericName",
    "showScans": True,
    "industry": "C27",
    "title": {"zh": "药品批次", "en": "Drug batch"},
    "items": [
        _item(2000, "genericName", "通用名称", "Generic name", required=True),
        _item(2001, "tradeName", "商品名称", "Trade name"),
        _item(2002, "approvalNumber", "批准文号", "Approval number", required=True,
              **DRUG_APPROVAL),
        _item(2003, "approvalValidUntil", "批准文号有效期", "Approval valid until", "date"),
        _item(2004, "dosageForm", "剂型", "Dosage form", required=True),
        _item(2005, "strength", "规格", "Strength", required=True),
        _item(2006, "packSpec", "包装规格", "Pack specification"),
        _item(2007, "holder", "上市许可持有人", "Marketing-authorisation holder", required=True),
        _item(2008, "manufacturer", "生产企业", "Manufacturer", required=True),
        _item(2009, "batchNumber", "生产批号", "Batch number", required=True),
        *_dates(2010, 2011),
        _item(2012, "traceCode", "药品追溯码", "Drug trace code", required=True, unique=True,
              **DRUG_TRACE_CODE),
        _item(2013, "storageCondition", "贮藏条件", "Storage (cold chain)"),
    ],
    "example": {
        "genericName": "阿莫西林胶囊",
        "approvalNumber": "国药准字H20230001",
        "approvalValidUntil": "2028-06-30",
        "dosageForm": "胶囊剂",
        "strength": "0.25g",
        "packSpec": "0.25g×24粒/盒",
        "holder": "华北制药股份有限公司",
        "manufacturer": "华北制药股份有限公司",
        "batchNumber": "20260301",
        "productionDate": "2026-03-01",
        "expiryDate": "2028-02-29",
        "traceCode": "81234567890123456789",
        "storageCondition": "遮光，密封保存",
    },
}  # fmt: skip

VACCINE_UNIT: dict[str, Any] = {
    "id": "vaccine.unit",
    "display": "vaccineName",
    "showScans": True,
    "industry": "C2762",
    "title": {"zh": "疫苗最小包装单位", "en": "Vaccine minimum package unit"},
    "items": [
        _item(2000, "traceCode", "疫苗追溯码", "Vaccine trace code", required=True, unique=True,
              **DRUG_TRACE_CODE),
        _item(2001, "vaccineName", "疫苗名称", "Vaccine name", required=True),
        _item(2002, "batch", "疫苗批次", "Vaccine batch (its identifier)", "reference",
              required=True),
        _item(2003, "batchNumber", "批号", "Batch number", required=True),
        _item(2004, "holder", "上市许可持有人", "Marketing-authorisation holder", required=True),
        *_dates(2005, 2006),
        _item(2007, "storageCondition", "冷链贮存条件", "Cold-chain storage", "enum",
              required=True, enum=["2-8°C", "-20°C", "-70°C"]),
        _item(2008, "parent", "上级包装", "Parent package", "reference"),
        _item(2009, "administeredAt", "接种单位", "Administered at", restricted=True),
    ],
    "example": {
        "traceCode": "81000023456789012345",
        "vaccineName": "乙型肝炎疫苗(酿酒酵母)",
        "batch": "88.999.1/VACCINE-BATCH-202603A",
        "batchNumber": "202603A",
        "holder": "北京生物制品研究所有限责任公司",
        "productionDate": "2026-03-05",
        "expiryDate": "2028-03-04",
        "storageCondition": "2-8°C",
    },
}  # fmt: skip

VETDRUG_PACKAGE: dict[str, Any] = {
    "id": "vetdrug.package",
    "display": "productName",
    "showScans": True,
    "industry": "C2750",
    "title": {"zh": "兽药包装", "en": "Veterinary drug package"},
    "items": [
        _item(2000, "traceCode", "兽药追溯码", "Veterinary drug trace code", required=True,
              unique=True, **VETDRUG_CODE),
        _item(2001, "productName", "兽药名称", "Product name", required=True),
        _item(2002, "approvalNumber", "兽药产品批准文号", "Approval number", required=True,
              **VETDRUG_APPROVAL),
        _item(2003, "manufacturer", "生产企业", "Manufacturer", required=True),
        _item(2004, "batchNumber", "生产批号", "Batch number", required=True),
        *_dates(2005, 2006),
        _item(2007, "packageLevel", "包装层级", "Package level", "enum", required=True,
              enum=["unit", "box", "case"]),
        _item(2008, "parent", "上级包装", "Parent package", "reference"),
        _item(2009, "packSpec", "包装规格", "Pack specification"),
    ],
    "example": {
        "traceCode": "202603011234500000000042",
        "productName": "恩诺沙星注射液",
        "approvalNumber": "兽药字(2024)150012345",
        "manufacturer": "中牧实业股份有限公司",
        "batchNumber": "260301",
        "productionDate": "2026-03-01",
        "expiryDate": "2028-02-29",
        "packageLevel": "box",
        "packSpec": "100mL/瓶×10瓶",
    },
}  # fmt: skip

# Gateways (another branch) write device records with exactly these items; 2006-2009 are
# liveness values the gateway keeps up to date, not asked for at registration.
DEVICE: dict[str, Any] = {
    "id": "device",
    "display": "model",
    "industry": "C40",
    "title": {"zh": "设备", "en": "Device"},
    "items": [
        _item(2000, "hardwareId", "硬件标识", "Hardware id", required=True, unique=True,
              length={"min": 1, "max": 64}),
        _item(2001, "hardwareIdType", "硬件标识类型", "Hardware id kind", "enum",
              required=True, enum=["serial", "mac", "imei", "deveui"]),
        _item(2002, "model", "型号", "Model"),
        _item(2003, "vendor", "厂商", "Vendor"),
        _item(2004, "location", "位置", "Location"),
        _item(2005, "network", "接入网络", "Network", "enum", enum=["mqtt", "lorawan", "nbiot"]),
        _item(2006, "firstSeen", "首次上线", "First seen", "datetime"),
        _item(2007, "lastSeen", "最近上线", "Last seen", "datetime"),
        _item(2008, "online", "在线状态", "Online", "enum", enum=["true", "false"]),
        _item(2009, "batteryLevel", "电量(%)", "Battery level (%)", "number",
              range={"min": 0, "max": 100}),
        _item(2010, "gatewayId", "网关标识", "Gateway id"),
    ],
    "example": {
        "hardwareId": "70B3D57ED005A1B2",
        "hardwareIdType": "deveui",
        "model": "LHT65N",
        "vendor": "Dragino",
        "location": "Workshop 2, line 3",
        "network": "lorawan",
    },
}  # fmt: skip

BUNDLED: tuple[dict[str, Any], ...] = (
    FOOD_PRODUCT,
    FOOD_BATCH,
    DRUG_BATCH,
    VACCINE_UNIT,
    VETDRUG_PACKAGE,
    DEVICE,
)
