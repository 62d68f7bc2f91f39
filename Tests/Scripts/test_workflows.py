"""Every action a workflow uses is pinned to a full commit SHA, with the release it is in a
comment (`uses: owner/name@<40 hex> # vX.Y.Z`): a moved tag cannot change what CI runs.
The SHAs were read from public sources that pin the same releases; to update one, take the
commit of the new release from the action's repository and change both."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USES = re.compile(r"^\s*-?\s*uses:\s*(\S+)(.*)$")


def test_every_action_is_pinned_by_commit_with_its_release_named():
    seen = []
    for workflow in sorted((ROOT / ".github" / "workflows").glob("*.yml")):
        for number, line in enumerate(workflow.read_text().splitlines(), 1):
            match = USES.match(line)
            if not match:
                continue
            where = f"{workflow.name}:{number}"
            action, rest = match.groups()
            seen.append(where)
            if action.startswith("./") or action.startswith("docker://"):
                continue
            assert re.fullmatch(r"[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40}", action), f"{where}: {action} is not pinned to a commit"
            assert re.search(r"#\s*v\d+(\.\d+)*\s*$", rest), f"{where}: name the release in a comment (# vX.Y.Z)"
    assert seen, "no workflow uses an action: the glob is wrong"
