"""The OpenAPI document describes every answer: schemathesis, against a live node on each
backend, with the operator's token and an enterprise's, finds no server error and no answer
(status, media type, body) the document does not describe."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import OPERATOR_TOKEN, LiveNode

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    ]
)
EXAMPLES = 10  # per operation and phase: a few minutes for both tokens on both backends
SEED = 1


def schemathesis(node: LiveNode, token: str, workdir: Path) -> subprocess.CompletedProcess[str]:
    st = Path(sys.executable).with_name("st")
    return subprocess.run(
        [
            str(st), "run", f"{node.url}/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--checks", CHECKS,
            "--phases", "examples,coverage,fuzzing",
            "--max-examples", str(EXAMPLES),
            "--seed", str(SEED),
            "--workers", "1",
            "--no-shrink",
            "--request-timeout", "20",
        ],
        cwd=workdir,  # its example database stays in the test's directory
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    live_node: LiveNode, tmp_path: Path
) -> None:
    live_node.stop()  # without the embedded broker, whose port the shared broker may hold
    live_node.start("--no-broker")  # (/readyz would answer 503 for it, rightly)
    enterprise = httpx.post(
        f"{live_node.url}/api/v1/enterprises",
        json={"name": "Fuzzed"},
        headers={"Authorization": f"Bearer {OPERATOR_TOKEN}"},
    ).json()
    for who, token in (("operator", OPERATOR_TOKEN), ("enterprise", enterprise["token"])):
        run = schemathesis(live_node, token, tmp_path)
        failures = run.stdout.partition("= FAILURES =")[2].partition("= WARNINGS =")[0]
        assert run.returncode == 0, f"{who}:\n{failures[:20000] or run.stdout[-4000:]}"
    assert "api.unexpected_error" not in live_node.log.read_text()


async def test_errors_are_documented_in_the_nodes_own_shape(client: httpx.AsyncClient) -> None:
    """Not FastAPI's HTTPValidationError: the {"error", "detail"} body the node answers, and
    the Handle body under /api/handles/."""
    document = (await client.get("/openapi.json")).json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    grants = document["paths"]["/api/v1/grants"]["post"]["responses"]
    for status in ("400", "401", "403", "408", "413", "422", "429", "503"):
        schema = grants[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Error"}, status
    resolve = document["paths"]["/api/handles/{handle}"]["get"]["responses"]
    assert resolve["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/HandleError"
    }
    answer = await client.post("/api/v1/grants", json={"grantee": 1})
    assert answer.status_code == 422
    assert set(answer.json()) == set(document["components"]["schemas"]["Error"]["required"])


async def test_the_node_key_is_documented_as_the_pem_it_is(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    documented = document["paths"]["/api/v1/node/key"]["get"]["responses"]["200"]["content"]
    answer = await client.get("/api/v1/node/key")
    assert answer.headers["content-type"].split(";")[0] in documented
    assert list(documented) == ["application/x-pem-file"]
