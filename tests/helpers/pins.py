"""The project's pinned requirements files, as pip-compile writes them."""


def pins(requirements):
    """{name: version} of a pinned requirements.txt (pip-compile's `name==version` lines), names
    normalized as pip compares them (lower case, `-` for `_`)."""
    found = {}
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            found[name.lower().replace("_", "-")] = version.split()[0].rstrip("\\").strip()
    return found
