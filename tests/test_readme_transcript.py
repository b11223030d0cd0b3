"""The README's transcripts run as written, on a fresh work directory, and print what they
show (issue 11, item 5: the old transcript used `--from alice` but never created `alice`).

A transcript is a ```console block of README.md: `$ command` lines (a trailing `\\` continues
a command on the next line) each followed by the output it prints, stdout and stderr
together. The output is compared line by line with runs of spaces and tabs taken as one
space (a terminal shows tables aligned, a pipe tab-separated); within a line `…` stands for
any text (pids, ports, hashes, times), and a line that is only `…` for any number of lines
left out. The commands run in one bash session in an empty folder (so `.citypass` there is
a fresh work directory), with `citypass` from this checkout's virtualenv.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from citypass import node

ROOT = Path(__file__).resolve().parent.parent
ELLIPSIS = "…"
MARK = "@@citypass-transcript-step@@"


@dataclass
class Step:
    line: int  # in README.md, of the `$` line
    command: str
    expected: list[str]


def transcripts(text: str) -> list[list[Step]]:
    """Every ```console block of the README, as its steps."""
    blocks, steps, inside, number = [], None, False, 0
    lines = text.splitlines()
    while number < len(lines):
        line = lines[number]
        number += 1
        if not inside:
            if line.strip() == "```console":
                inside, steps = True, []
            continue
        if line.strip() == "```":
            inside = False
            blocks.append(steps)
            continue
        if line.startswith("$ "):
            start, command = number, line[2:]
            while command.rstrip().endswith("\\"):
                command = command.rstrip()[:-1] + " " + lines[number].strip()
                number += 1
            steps.append(Step(start, command, []))
        else:
            assert steps, f"README.md line {number}: output before the first `$` command"
            steps[-1].expected.append(line)
    assert not inside, "README.md: a ```console block is not closed"
    return blocks


def _squeeze(text: str) -> str:
    return re.sub(r"[ \t]+", " ", text).strip()


def _line_pattern(expected: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in _squeeze(expected).split(ELLIPSIS)]
    return re.compile(".*".join(parts))


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line, `…` lines matching any number of lines (see the module docstring)."""
    exp = [_squeeze(e) for e in expected]
    act = [_squeeze(a) for a in actual if a.strip()]
    exp = [e for e in exp if e]

    def go(i: int, j: int) -> bool:
        if i == len(exp):
            return j == len(act)
        if exp[i] == ELLIPSIS:
            return any(go(i + 1, k) for k in range(j, len(act) + 1))
        return j < len(act) and _line_pattern(exp[i]).fullmatch(act[j]) is not None and go(i + 1, j + 1)

    return go(0, 0)


def run(steps: list[Step], folder: Path) -> list[str]:
    """Runs the steps in one bash session in `folder`; the output of each, stdout and stderr."""
    script = ["set +e"]
    for step in steps:
        script += [f"echo '{MARK}' >&2", step.command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYPASS_")}
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{ROOT / 'node_modules' / '.bin'}{os.pathsep}{env['PATH']}",
               PYTHONUNBUFFERED="1", COLUMNS="200", TERM="dumb", NO_COLOR="1")
    done = subprocess.run(["bash", "-c", "\n".join(script)], cwd=folder, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=600)
    parts = done.stdout.split(MARK + "\n")
    assert len(parts) == len(steps) + 1, done.stdout
    return parts[1:]


BLOCKS = transcripts((ROOT / "README.md").read_text(encoding="utf-8"))


def test_the_readme_has_a_transcript():
    assert BLOCKS and all(BLOCKS), "README.md has no ```console transcript"
    commands = [s.command for block in BLOCKS for s in block]
    # Every keystore a transcript signs with is created in it first.
    for name in {m for c in commands for m in re.findall(r"--from (?!dev:)(\S+)", c)}:
        assert any(re.search(rf"account (new|import) {re.escape(name)}\b", c) for c in commands), name


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_a_transcript_runs_as_written(tmp_path, index):
    steps = BLOCKS[index]
    try:
        outputs = run(steps, tmp_path)
    finally:
        node.node_stop(tmp_path / ".citypass")
    for step, out in zip(steps, outputs):
        assert matches(step.expected, out.splitlines()), (
            f"README.md line {step.line}: `$ {step.command}` printed\n{out}\nbut the README shows\n"
            + "\n".join(step.expected))


def test_the_matcher():
    assert matches(["a  b", "tx 0x…, gas …"], ["a\tb", "tx 0xab12, gas 66,570"])
    assert not matches(["a"], ["a", "b"]) and matches(["a", ELLIPSIS], ["a", "b", "c"])
    assert matches([ELLIPSIS, "c"], ["a", "b", "c"]) and not matches(["x…"], ["ya"])
