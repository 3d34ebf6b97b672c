"""Every code block of README.md and docs/*.md, run as a user would run it.

Each Markdown file's ``python`` blocks run in order in one namespace (like a
notebook: a later block may use an earlier block's names), against the real
stack of ``stack_fixture.real_stack``: a real Redis server, the consumer as a
process of its own, the database in ``~/.metastream`` (``HOME`` points to a
directory of the test). What a block prints is checked where the text says
what it prints: a line ``print(x)  # {...}`` must print what its comment shows.

A block that cannot run as it stands (a shell command that installs
packages, a fragment that needs context the page describes in words) is
marked in the Markdown with an HTML comment on the line before its fence,
invisible on the rendered page::

    <!-- not run: the reason -->

A ``sh`` block without that marker fails the test: every shell block is
either run by some test (the README's quick start is what ``.ci/run`` runs)
or says why not.
"""

from __future__ import annotations

import ast
import contextlib
import io
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import metastream
from tests.integration.stack_fixture import RealStack, clean_env, real_stack

pytestmark = pytest.mark.redis

__all__ = ["clean_env", "real_stack"]  # fixtures, used by name

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NOT_RUN = re.compile(r"<!--\s*not run:\s*(?P<reason>\S.*?)\s*-->")
FENCE = re.compile(r"^```(?P<info>\S*)\s*$")
PRINT_COMMENT = re.compile(r"^(?P<indent>\s*)print\((?P<expr>.*)\)\s+#\s*(?P<shown>.*)$")


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    code: str
    not_run: str | None

    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    found: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if match is None:
            i += 1
            continue
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and not lines[i].startswith("```"):
            body.append(lines[i])
            i += 1
        before = lines[start - 1] if start > 0 else ""
        marker = NOT_RUN.search(before)
        found.append(
            Block(
                path,
                start + 1,
                match["info"],
                "\n".join(body) + "\n",
                marker["reason"] if marker else None,
            )
        )
        i += 1
    return found


def test_the_block_reader_finds_blocks_and_markers(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n<!-- not run: needs Docker -->\n```sh\ndocker ps\n```\n"
    )
    first, second = blocks(page)
    assert (first.info, first.code, first.not_run) == ("python", "x = 1\n", None)
    assert (second.info, second.not_run) == ("sh", "needs Docker")


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_block_runs_or_says_why_not(path: Path) -> None:
    """Python blocks compile; every shell block is run elsewhere or marked with its reason."""
    for block in blocks(path):
        if block.info == "python":
            compile(block.code, block.where(), "exec")
        elif block.info in ("sh", "bash", "shell", "console"):
            assert block.not_run, (
                f"{block.where()}: a shell block with no `<!-- not run: why -->` marker"
            )


def _with_checked_prints(code: str) -> str:
    """``print(x)  # {...}`` becomes a print and an assertion that it prints what is shown.

    The comment is evaluated in the example's namespace (so ``StorageSize(3)``
    means metastream's), and what ``print`` writes must equal what the
    comment's value prints. A comment that is not an expression is an
    illustration, only printed.
    """
    out: list[str] = []
    for line in code.splitlines():
        match = PRINT_COMMENT.match(line)
        if match is None:
            out.append(line)
            continue
        shown = match["shown"]
        try:
            ast.parse(shown, mode="eval")
        except SyntaxError:
            out.append(line)
            continue
        indent = match["indent"]
        out.append(f"{indent}__shown = {match['expr']}")
        out.append(f"{indent}print(__shown)")
        out.append(
            f"{indent}assert str(__shown) == str(({shown})), "
            f"('printed', str(__shown), 'the text shows', {shown!r})"
        )
    return "\n".join(out) + "\n"


def test_a_print_comment_that_disagrees_fails() -> None:
    namespace: dict[str, object] = {}
    exec(_with_checked_prints("x = {'a': 1}\nprint(x)  # {'a': 1}\n"), namespace)
    with pytest.raises(AssertionError, match="the text shows"):
        exec(_with_checked_prints("x = {'a': 2}\nprint(x)  # {'a': 1}\n"), namespace)


def _python_blocks(path: Path) -> list[Block]:
    return [b for b in blocks(path) if b.info == "python" and b.not_run is None]


@pytest.mark.parametrize("path", [p for p in DOCS if _python_blocks(p)], ids=lambda p: p.name)
def test_python_blocks_run_against_the_real_stack(
    path: Path, real_stack: RealStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = tmp_path / "user"
    user.mkdir()
    (user / ".metastream").symlink_to(real_stack.settings.home)
    monkeypatch.setenv("HOME", str(user))
    monkeypatch.delenv("METASTREAM_HOME")  # the default, ~/.metastream
    # `metastream` on the PATH, as after `pip install`
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")
    namespace: dict[str, object] = {"__name__": "__doc_example__"}
    printed = io.StringIO()
    for block in _python_blocks(path):
        code = compile(_with_checked_prints(block.code), block.where(), "exec")
        with contextlib.redirect_stdout(printed):
            try:
                exec(code, namespace)  # the documentation's own examples
            except Exception as exc:
                pytest.fail(
                    f"{block.where()} fails as written: {type(exc).__name__}: {exc}\n"
                    f"printed so far:\n{printed.getvalue()}\n"
                    f"the consumer's output:\n{real_stack.output()}"
                )
    assert metastream.flush(10)
