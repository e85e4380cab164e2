"""The page's assets: the vendored chart library is byte for byte the pinned npm package, and
the page names no other host."""
import re
import subprocess

from localapp import IMAGES, ROOT

WEBUI = IMAGES / "webui"


def test_vendored_uplot_is_the_pinned_npm_package():
    # npm ci checks the tarball against the lock file's sha512, then the script compares.
    result = subprocess.run([str(ROOT / "ci" / "vendor-webui.sh"), "--check"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "match uplot@1.6.32" in result.stderr
    licence = (WEBUI / "static" / "vendor" / "uplot" / "LICENSE").read_text()
    assert "MIT License" in licence


def test_page_and_assets_reference_no_other_host():
    # Only relative URLs in the template, and no absolute URL the browser would fetch in the
    # page's own code (the uPlot banner comment names its home page; it is never fetched).
    template = (WEBUI / "templates" / "index.html").read_text()
    assert re.findall(r'(?:src|href)="([^"]+)"', template) == [
        "data:,", "static/vendor/uplot/uPlot.min.css", "static/dashboard.css",
        "static/vendor/uplot/uPlot.iife.min.js", "static/dashboard.js"]
    for asset in ("dashboard.js", "dashboard.css"):
        text = (WEBUI / "static" / asset).read_text()
        assert not re.findall(r"[a-z][a-z0-9+.-]*://", text, flags=re.I), asset
