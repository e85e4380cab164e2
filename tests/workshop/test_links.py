"""Every relative link of README.md, docs/*.md and the chart's README resolves in a clone: the file
is tracked by git (a link to something outside the repository, such as ../shared/, is dead in
any clone), and a `#fragment` into a Markdown page names one of its headings, as GitHub and
GitLab make anchors of them."""
import re
import subprocess

import pytest

import readme

ROOT = readme.ROOT
# [text](target) and ![alt](target), the target up to a space or ")"; <https://...> autolinks and
# code spans are not links.
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^[ \t]*```.*?^[ \t]*```", re.S | re.M)
CODE = re.compile(FENCE.pattern + r"|`[^`\n]*`", re.S | re.M)


def tracked():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    files = {ROOT / name for name in out.stdout.decode().split("\0") if name}
    return files | {parent for f in files for parent in f.parents if ROOT in parent.parents}


def anchors(page):
    """The anchors GitHub and GitLab give the headings of `page`: lowercased, punctuation
    dropped, spaces made dashes, and -1, -2... on repeats."""
    seen, found = {}, set()
    for heading in re.findall(r"^#{1,6} (.+?)\s*#*$", FENCE.sub("", page.read_text()), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def links(page):
    for target in LINK.findall(CODE.sub("", page.read_text())):
        if not re.match(r"[a-z][a-z0-9+.-]*:", target):   # http:, https:, mailto: are not ours
            yield target


def test_the_anchors_are_made_as_the_forges_make_them(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n## The scaling lab: `lab/cli.py`\n## A, then B\n## A, then B\n"
                    "```\n## not a heading\n```\n")
    assert anchors(page) == {"title", "the-scaling-lab-labclipy", "a-then-b", "a-then-b-1"}


def dead_links(page, files):
    dead = []
    for target in links(page):
        path, _, fragment = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if resolved not in files and resolved != page:
            dead.append(f"{target}: no such file in the repository")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            dead.append(f"{target}: {resolved.name} has no heading #{fragment}")
    return dead


@pytest.mark.parametrize("page", readme.pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_resolves(page):
    dead = dead_links(page, tracked())
    assert not dead, f"{page.relative_to(ROOT)}: dead links:\n" + "\n".join(dead)


def test_the_checker_finds_dead_links(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Here\n[gone](../shared/SPEC.md) [web](https://example.org) `[code](x.md)`\n"
                    "[up](#here) [nowhere](#there) [readme](%s#no-such-heading)\n" % readme.README)
    assert dead_links(page, tracked()) == [
        "../shared/SPEC.md: no such file in the repository",
        "#there: page.md has no heading #there",
        f"{readme.README}#no-such-heading: README.md has no heading #no-such-heading"]
