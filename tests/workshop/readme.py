"""The command blocks of the pages people read: README.md, every docs/*.md page and the chart's
README. Each fenced `sh`, `console` or `bash` block comes with its page, the section it sits in
and its marker, if any. A block that cannot run in the tests is preceded by
`<!-- norun: why -->`; one that another test runs by `<!-- run: which test, how -->`. Every
other command block runs in test_readme_commands.py (the workshop walk of docs/workshop.md), so
moving a block from one page to another never takes it out of the tests."""
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
# Written by ci/bench.py: tables of figures, not commands for a reader to type.
GENERATED = {ROOT / "docs" / "benchmarks.md"}
COMMAND_LANGUAGES = {"sh", "console", "bash"}
BLOCK = re.compile(
    r"(?:^[ \t]*<!--\s*(?P<marker>norun|run):\s*(?P<note>.*?)\s*-->[ \t]*\n)?"
    r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
HEADING = re.compile(r"^(#{2,4}) (.+)$", re.M)


def pages():
    """Every page whose commands are held to the rule: README.md, docs/*.md, the chart's README."""
    docs = sorted(p for p in (ROOT / "docs").glob("*.md") if p not in GENERATED)
    return [README, *docs, ROOT / "charts" / "dockercoins" / "README.md"]


def page_path(page):
    """A page given as a Path or as a path relative to the repository."""
    return page if isinstance(page, Path) else ROOT / page


@dataclass
class Block:
    page: str        # relative to the repository, e.g. "docs/workshop.md"
    section: str     # the "## " heading it is under
    lang: str
    code: str        # the commands, indentation removed
    marker: str      # "", "norun" or "run"
    note: str
    line: int

    def lines(self):
        return [line for line in self.code.splitlines() if line.strip()]

    def where(self):
        return f"{self.page}:{self.line} ({self.section})"


def command_blocks(page=README, text=None):
    """The command blocks of one page (or of `text`, read as if it were that page)."""
    path = page_path(page)
    text = path.read_text() if text is None else text
    name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    sections = [(m.start(), m.group(2)) for m in HEADING.finditer(text) if m.group(1) == "##"]
    found = []
    for match in BLOCK.finditer(text):
        if match.group("lang") not in COMMAND_LANGUAGES:
            continue
        indent = match.group("indent")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line
                         for line in match.group("body").splitlines())
        section = next((title for start, title in reversed(sections) if start < match.start()), "")
        found.append(Block(name, section, match.group("lang"), code, match.group("marker") or "",
                           match.group("note") or "", text.count("\n", 0, match.start("lang")) + 1))
    return found


def all_command_blocks():
    return [block for page in pages() for block in command_blocks(page)]


def block_starting(first_line, page):
    """The one block of `page` whose first command, comment removed, is `first_line`."""
    found = [b for b in command_blocks(page)
             if b.lines() and b.lines()[0].split("#", 1)[0].strip() == first_line]
    assert len(found) == 1, f"{len(found)} blocks of {page} start with {first_line!r}"
    return found[0]


def first_line_starting(prefix, section, page=README):
    """The line, as typed, that starts with `prefix` in a block of `section` of `page`."""
    for block in command_blocks(page):
        if block.section.startswith(section):
            for line in block.lines():
                if line.startswith(prefix):
                    return line.split("#", 1)[0].strip()
    raise AssertionError(f"no command starting with {prefix!r} under '## {section}' in {page}")
