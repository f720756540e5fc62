"""``idnode import`` with an ``idempotencyKey`` column: importing the same file again
registers nothing twice, and a row reusing a key for other content is rejected with the
reason, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv

from tests.test_cli import IMPORT_HEADER, Cli, cli, query

__all__ = ["cli"]  # the fixture: ``idnode`` on a fresh database of each backend

HEADER = f"{IMPORT_HEADER},idempotencyKey"
ROW = "88.999.1/P-1,B{n},2026-03-01,2026-08-28,{quantity},pallet,key-{n}"


def rows(*lines: tuple[int, int]) -> str:
    return "\n".join([HEADER, *(f",{ROW.format(n=n, quantity=q)}" for n, q in lines)]) + "\n"


def test_import_again_is_a_retry_and_a_reused_key_is_rejected(cli: Cli) -> None:
    cli.ok("enterprise", "create", "Yili Dairy")
    source = cli.workdir / "keyed.csv"
    source.write_text(rows((1, 100), (2, 200)), encoding="utf-8")
    imported = ("import", str(source), "--template", "food.batch", "--prefix", "88.999.1")
    cli.ok(*imported)
    again = cli.ok(*imported)  # the same file: every row is a retry
    assert "2 of 2 rows registered" in again
    stored = "SELECT count(*) FROM handles WHERE handle LIKE '88.999.1/%'"
    assert query(cli.database_url, stored) == [(3,)]  # two rows and the prefix's ADMIN

    source.write_text(rows((1, 100), (2, 999), (3, 300), (3, 301)), encoding="utf-8")
    done = cli.run(*imported)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert "2 of 4 rows registered" in done.stdout
    with (cli.workdir / "keyed.rejected.csv").open(encoding="utf-8", newline="") as file:
        rejected = {row[0]: row for row in list(csv.reader(file))[1:]}
    assert set(rejected) == {"3", "5"}
    assert rejected["3"][1] == "IdempotencyKeyReused"
    assert "key-2" in rejected["3"][2]
    assert rejected["5"][1] == "IdempotencyKeyReused"
    assert "line 4" in rejected["5"][2]
    assert query(cli.database_url, stored) == [(4,)]  # only key-3's first row was added
    quantities = query(
        cli.database_url, "SELECT value FROM attribute_values WHERE name = 'quantity'"
    )
    assert sorted(v for (v,) in quantities) == ["100", "200", "300"]
