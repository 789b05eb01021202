"""Every snippet in README.md runs as written, and prints what the README says it prints.

The conventions, visible in README.md itself:

- Every fenced ```` ```python ```` and ```` ```bash ```` block runs, in README order, each in a new process in one
  scratch folder (so a later block can read what an earlier one wrote, as a reader typing them would). ``swirl``
  is this checkout's command and ``python`` the interpreter running the tests.
- A block whose first line is ``# not run by tests: REASON`` is skipped, with its reason in the test report.
  There are at most :data:`MAX_SKIPPED` of them (the install commands, jobs that take minutes, placeholders
  such as a model path), and an unmarked block that installs packages fails instead of running.
- A ```` ```text ```` block right after a code block (only blank lines between) is its expected output: its
  lines must appear in the output in that order; ``...`` inside a line stands for any text, and a line that is
  only ``...`` for any number of lines.

The blocks are found when the tests are collected, so whatever the README holds is what runs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from swirl_env.data import paths
from tests.conftest import require_data

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP_MARK = "# not run by tests:"
MAX_SKIPPED = 3
RUNNABLE = ("python", "bash")
DATA_OF = {
    "SwirlHotpot-v0": ("hotpotqa/hotpot_dev_distractor_subset.json.gz", "wikipedia/hotpotqa_paragraphs.jsonl.gz"),
    "SwirlGSM8K-v0": ("gsm8k/test.jsonl",),
}
"""Real data a block needs when it names the env (a missing file skips it, or fails under CI)."""


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README and the output it is said to print."""

    language: str
    code: str
    line: int
    """Line of the opening fence (1-based)."""
    section: str
    """The heading the block is under."""
    expected: str | None = None

    @property
    def name(self) -> str:
        return f"L{self.line}-{self.language}-{re.sub(r'[^A-Za-z0-9]+', '_', self.section).strip('_')}"

    @property
    def skip_reason(self) -> str | None:
        first = self.code.lstrip("\n").split("\n", 1)[0].strip()
        return first[len(SKIP_MARK):].strip() or "(no reason given)" if first.startswith(SKIP_MARK) else None


def fenced_blocks(markdown: str) -> list[Block]:
    """The fenced code blocks of ``markdown``; a ``text`` block right after a code block becomes its ``expected``.

    Example:
        >>> readme = "# A\\n```python\\nprint(1)\\n```\\n\\n```text\\n1\\n```\\n"
        >>> [(b.language, b.section, b.expected) for b in fenced_blocks(readme)]
        [('python', 'A', '1')]
    """
    blocks: list[Block] = []
    lines = markdown.split("\n")
    section, i, last_end = "", 0, -2
    while i < len(lines):
        line = lines[i]
        if line.startswith("#"):  # a heading: the scanner jumps over code blocks whole
            section = line.lstrip("#").strip()
        opening = re.match(r"^(`{3,})\s*([\w+-]*)", line)
        if not opening:
            i += 1
            continue
        fence, language = opening.group(1), opening.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].strip() == fence), None)
        if end is None:
            raise ValueError(f"README.md:{i + 1}: expected a closing {fence}, actual end of file")
        code = "\n".join(lines[i + 1:end])
        gap = lines[last_end + 1:i]
        if language == "text" and blocks and blocks[-1].language in RUNNABLE and last_end >= 0 and not any(
                g.strip() for g in gap):
            blocks[-1] = dataclasses.replace(blocks[-1], expected=code)
        else:
            blocks.append(Block(language, code, i + 1, section))
        last_end, i = end, end + 1
    return blocks


def matches(expected: str, output: str) -> bool:
    """Whether the lines of ``expected`` appear in ``output`` in order (`` ...``: any text; a ``...`` line: any lines).

    Example:
        >>> matches("a ...\\n...\\nd", "a b\\nc\\nd"), matches("d\\na ...", "a b\\nc\\nd")
        (True, False)
    """
    wanted = [line.rstrip() for line in expected.strip("\n").split("\n") if line.strip() != "..."]
    got = [line.rstrip() for line in output.split("\n")]
    k = 0
    for pattern in wanted:
        regex = re.compile(".*".join(re.escape(part) for part in re.split(r" *\.\.\.", pattern)) + r"\Z")
        while k < len(got) and not regex.match(got[k]):
            k += 1
        if k == len(got):
            return False
        k += 1
    return True


BLOCKS = [b for b in fenced_blocks(README.read_text(encoding="utf-8")) if b.language in RUNNABLE]


def run_block(block: Block, cwd: Path) -> subprocess.CompletedProcess:
    """Run one block as a reader would: Python blocks as a script, bash blocks with ``swirl`` being this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SWIRL_DATA_DIR": str(paths.data_dir().resolve()),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", "COLUMNS": "100"}
    if block.language == "python":
        command = [sys.executable, "-c", block.code]
    else:
        swirl = f'swirl() {{ "{sys.executable}" -m swirl_agents.cli "$@"; }}\n'
        command = ["bash", "-euo", "pipefail", "-c", swirl + block.code]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("readme")
    (folder / "examples").symlink_to(ROOT / "examples")
    return folder


def test_the_readme_has_runnable_blocks_and_few_named_skips():
    skipped = [(b.name, b.skip_reason) for b in BLOCKS if b.skip_reason]
    assert len(BLOCKS) - len(skipped) >= 3, "expected the README to show runnable Python and shell snippets"
    assert len(skipped) <= MAX_SKIPPED, f"expected at most {MAX_SKIPPED} blocks marked {SKIP_MARK!r}, actual {skipped}"
    assert all(reason != "(no reason given)" for _, reason in skipped), skipped
    installs = [b.name for b in BLOCKS if not b.skip_reason and re.search(r"\bpip install\b", b.code)]
    assert not installs, f"blocks that install packages must start with '{SKIP_MARK} installs packages': {installs}"


def test_ten_lines_answers_a_real_question_correctly():
    block = next(b for b in BLOCKS if b.section == "Ten lines" and b.language == "python")
    assert "question_id" in block.code and block.expected, "Ten lines picks a question by id and shows its output"
    assert block.expected.strip().split("\n")[-1].startswith("1.0 "), "the example ends with a correct answer"
    code_lines = [line for line in block.code.split("\n") if line.strip()]
    assert len(code_lines) <= 12, f"expected about ten lines, actual {len(code_lines)}"


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_readme_block_runs_as_written(block, scratch):
    if block.skip_reason:
        pytest.skip(f"{block.name}: {block.skip_reason}")
    for env_id, files in DATA_OF.items():
        if env_id in block.code:
            for name in files:
                require_data(name)
    result = run_block(block, scratch)
    tail = f"\n--- stdout ---\n{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}"
    assert result.returncode == 0, f"README.md:{block.line} failed (exit {result.returncode}){tail}"
    assert "Traceback" not in result.stderr, f"README.md:{block.line} printed a traceback{tail}"
    if block.expected is not None:
        assert matches(block.expected, result.stdout), (
            f"README.md:{block.line}: the output differs from the text block under it\n--- expected ---\n"
            f"{block.expected}{tail}")


def test_expected_output_matching_fails_on_a_wrong_output():
    assert matches("x ... z\n...\n1.0 ('a',)", "x y z\nmore\n1.0 ('a',)")
    assert not matches("1.0 ('a',)", "0.0 ('a',)")
    assert not matches("[step 1/5] ...", "[step 2/5] search")


def test_ci_runs_exactly_the_readme_test_command():
    """``.ci/run`` ends with the README's test line, character for character."""
    readme_lines = [line.strip() for line in README.read_text(encoding="utf-8").splitlines()]
    test_line = next(line for line in readme_lines if line.endswith("python -m pytest -q") and "pip install" in line)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert ci_lines[-1] == test_line
