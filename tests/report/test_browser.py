"""The page in headless Chromium from a ``file://`` URL: it loads with no console error, every
image decodes (non-zero natural size) and every table fits inside its card. Skipped, with the
reason, where Chromium is not installed (``.ci/run`` installs Debian's ``chromium`` when it runs as root)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Injected into a copy of the page: records errors from the first moment, then, once everything
# has loaded, writes what it found into the DOM for --dump-dom to return.
WATCH = """<script>
window.__errors = [];
addEventListener("error", e => __errors.push(String(e.message || (e.target && e.target.src) || e)), true);
const __consoleError = console.error;
console.error = (...args) => { __errors.push(args.join(" ")); __consoleError(...args); };
</script>"""
REPORT = """<script>
addEventListener("load", () => {
  const images = [...document.images];
  const out = document.createElement("pre");
  out.id = "browser-check";
  const cut = [...document.querySelectorAll(".scroll")].filter(s => s.scrollWidth > s.clientWidth + 1
    || s.getBoundingClientRect().right > s.closest("section").getBoundingClientRect().right + 1);
  out.textContent = JSON.stringify({images: images.length, errors: __errors,
    broken: images.filter(i => !i.complete || i.naturalWidth === 0).map(i => i.dataset.name || i.alt),
    cut: cut.map(s => s.querySelector(".caption").textContent)});
  document.body.appendChild(out);
});
</script>"""


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")
def test_page_loads_in_chromium_with_no_error_and_every_image_decoded(built, tmp_path):
    _, _, reports = built
    html = (reports / "index.html").read_text()
    assert "<script" not in html  # the page itself runs nothing
    page = tmp_path / "index.html"
    page.write_text(html.replace("<head>", "<head>" + WATCH, 1).replace("</body>", REPORT + "</body>", 1))
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--window-size=960,900",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', result.stdout, flags=re.S)
    assert found, f"the page did not finish loading:\n{result.stderr[-2000:]}"
    check = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert check["images"] >= 12
    assert check["broken"] == []
    assert check["errors"] == []
    assert check["cut"] == []  # on a 960-pixel window every table fits its card: cells wrap
    console = [line for line in result.stderr.splitlines() if "CONSOLE" in line]
    assert console == [], console
