"""scripts/fuzz-api, short: schemathesis over every operation of the gateway's served
OpenAPI document (10 examples per operation and phase, a fixed seed), against a real
gateway and a Triton of its own. It fails on any 5xx, any answer the document does not
describe, invalid data or missing credentials accepted, a wrong answer to an undeclared
method, an error in the gateway's log, or an audit chain that does not verify. The long
run is `scripts/fuzz-api` (50 examples) or more with --max-examples."""

import re
from pathlib import Path

from processes import run_terminating

ROOT = Path(__file__).resolve().parents[2]


def test_the_served_api_holds_under_schemathesis():
    returncode, output = run_terminating([str(ROOT / "scripts" / "fuzz-api"), "--max-examples", "10"], timeout=900)
    assert returncode == 0, output[-6000:]
    selected = re.search(r"Selected: (\d+)/(\d+)", output)
    tested = re.search(r"Tested: (\d+)", output)
    assert selected and tested, output[-3000:]
    assert selected.group(1) == selected.group(2) == tested.group(1), "every operation of the document is fuzzed"
    assert "OK," in output, "the audit chain of the fuzzed requests verifies"
