"""The examples a new user copies from run as they are, and print what they claim to show."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, tmp_path: Path) -> str:
    """Run ``examples/NAME`` from another folder, as a user would; return its stdout (fail on any error)."""
    result = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stdout


def test_quickstart_records_judges_filters_and_shows_an_episode(tmp_path):
    out = run_example("quickstart.py", tmp_path)
    kept = {m["strategy"]: (int(m["episodes"]), int(m["transitions"]), float(m["correct"])) for m in re.finditer(
        r"^(?P<strategy>[a-z+]+): kept (?P<episodes>\d+)/100 episodes, (?P<transitions>\d+)/\d+ transitions; "
        r"(?P<correct>[\d.]+)% of kept episodes correct$", out, re.M)}
    assert list(kept) == ["none", "outcome", "process", "process+outcome"], out
    assert kept["none"][0] == 100 and kept["outcome"][2] == 100.0
    assert kept["process"][1] < kept["none"][1], "the process filter drops the transitions of episodes with BAD steps"
    assert kept["process+outcome"][1] <= min(kept["process"][1], kept["outcome"][1])
    steps = re.search(r"^episode \S+: (\d+) steps -> (\d+) transitions$", out, re.M)
    assert steps and steps[1] == steps[2], "an episode of K steps decomposes into K transitions"
    assert "judged GOOD]" in out and "judged BAD]" in out, "the episode shown has a GOOD and a BAD step"


def test_custom_agent_plugs_in_and_is_evaluated(tmp_path):
    out = run_example("custom_agent.py", tmp_path)
    assert out.startswith("I should look this up. <search_query>"), out[:200]
    scores = re.search(r"^accuracy ([\d.]+), process label accuracy ([\d.]+) over 40 episodes$", out, re.M)
    assert scores, out
    accuracy, process = map(float, scores.groups())
    # Its searches are sound and its answers (a paragraph title) mostly wrong: the judge credits the steps apart.
    assert process > accuracy
    assert "agent     search-then-answer" in out and "[step 1/2  search_query]" in out


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_every_example_says_how_to_run_it(name):
    text = (EXAMPLES / name).read_text()
    assert f"examples/{name}" in text.split('"""')[1], f"{name}: the docstring should give the command that runs it"
