"""The README's command blocks: each fenced `sh`, `console` or `bash` block, with the section it
sits in and its marker, if any. A block that cannot run in the tests is preceded by
`<!-- norun: why -->`; one that another test runs by `<!-- run: which test, how -->`. Every
other command block runs in test_readme_commands.py."""
import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
COMMAND_LANGUAGES = {"sh", "console", "bash"}
BLOCK = re.compile(
    r"(?:^[ \t]*<!--\s*(?P<marker>norun|run):\s*(?P<note>.*?)\s*-->[ \t]*\n)?"
    r"^(?P<indent>[ \t]*)```(?P<lang>\w*)[^\n]*\n(?P<body>.*?)^(?P=indent)```", re.M | re.S)
HEADING = re.compile(r"^(#{2,4}) (.+)$", re.M)


@dataclass
class Block:
    section: str     # the "## " heading it is under
    lang: str
    code: str        # the commands, indentation removed
    marker: str      # "", "norun" or "run"
    note: str
    line: int

    def lines(self):
        return [line for line in self.code.splitlines() if line.strip()]


def command_blocks(text=None):
    text = README.read_text() if text is None else text
    sections = [(m.start(), m.group(2)) for m in HEADING.finditer(text) if m.group(1) == "##"]
    found = []
    for match in BLOCK.finditer(text):
        if match.group("lang") not in COMMAND_LANGUAGES:
            continue
        indent = match.group("indent")
        code = "\n".join(line[len(indent):] if line.startswith(indent) else line
                         for line in match.group("body").splitlines())
        section = next((title for start, title in reversed(sections) if start < match.start()), "")
        found.append(Block(section, match.group("lang"), code, match.group("marker") or "",
                           match.group("note") or "", text.count("\n", 0, match.start("lang")) + 1))
    return found


def first_line_starting(prefix, section):
    """The README line, as typed, that starts with `prefix` in a block of `section`."""
    for block in command_blocks():
        if block.section.startswith(section):
            for line in block.lines():
                if line.startswith(prefix):
                    return line.split("#", 1)[0].strip()
    raise AssertionError(f"no command starting with {prefix!r} under '## {section}' in README.md")
