"""The three HTML reports (validate, bench, convert), rendered by headless Chromium at 1400 px and at a phone's
390 px: the page is never wider than the window, and the reports hold what the Markdown/terminal views hold.

Screenshots go to the test's folder (and to $EDGEKIT_SCREENSHOTS when set, to look at them); never committed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

WIDTHS = (1400, 390)


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: run `make services` (installs it from Debian)", pytrace=False)
    return exe


def _page_width(page: Path, width: int, tmp: Path) -> tuple[int, int, int]:
    """(document.scrollWidth, window.innerWidth, the most any table scrolls sideways) of ``page`` in a window ``width`` px wide (a copy with a one-line
    script writes them; headless Chromium's window is at least 500 px wide, so the phone check is at that)."""
    probe = tmp / f"probe-{width}-{page.name}"
    script = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-scroll-width',"
              "document.documentElement.scrollWidth+' '+window.innerWidth+' '+Math.max(0,...[...document."
              "querySelectorAll('.scroll')].map(e=>e.scrollWidth-e.clientWidth)))})</script>")
    probe.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                          f"--window-size={width},2000", "--virtual-time-budget=3000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'data-scroll-width="(\d+) (\d+) (\d+)"', dom)
    assert m, dom[-2000:]
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _screenshot(page: Path, width: int, tmp: Path) -> Path:
    png = tmp / f"{page.stem}-{width}.png"
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={png}", f"--window-size={width},2000", "--virtual-time-budget=3000",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    keep = os.environ.get("EDGEKIT_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(png, Path(keep) / png.name)
    return png


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """validate (with a failing candidate, so reasons and statistics show), bench and convert reports."""
    import numpy as np
    import onnx
    from cli_util import invoke
    from model_factory import copy_digits
    from onnx import helper, numpy_helper

    from edgekit.examples import DIGITS_DIR

    root = tmp_path_factory.mktemp("html")
    d = copy_digits(root / "digits")
    m = onnx.load(str(d["onnx"]))  # a candidate whose input is halved: it fails validation
    x = m.graph.input[0].name
    m.graph.initializer.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    for node in m.graph.node:
        node.input[:] = ["x_half" if i == x else i for i in node.input]
    m.graph.node.insert(0, helper.make_node("Mul", [x, "half"], ["x_half"]))
    (root / "bad").mkdir()
    onnx.save(m, str(root / "bad" / "digits_cnn.onnx"))
    r = invoke("validate", d["onnx"], d["tflite"], d["xml"], root / "bad" / "digits_cnn.onnx", "--data", d["data"],
               "--html", root / "validate.html", "--markdown", root / "validate.md", "--localize")
    assert r.exit_code == 1, r.output
    r = invoke("bench", d["onnx"], d["tflite"], d["xml"], "--runs", "30", "--warmup", "2", "--overhead",
               "--html", root / "bench.html")
    assert r.exit_code == 0, r.output
    r = invoke("convert", DIGITS_DIR / "digits_cnn.keras", "--to", "tflite,onnx,coreml", "-o", root / "conv",
               "--sample", d["data"])
    assert r.exit_code == 0, r.output
    return {"validate": root / "validate.html", "bench": root / "bench.html", "convert": root / "conv" / "report.html",
            "md": (root / "validate.md").read_text()}


@pytest.mark.parametrize("name", ["validate", "bench", "convert"])
def test_report_fits_the_window(reports, name, tmp_path):
    page = reports[name]
    for width in WIDTHS:
        scroll, window, sideways = _page_width(page, width, tmp_path)
        assert window <= max(width, 500) and scroll <= window, f"{name}: {scroll} px wide in a {window} px window"
        if width >= 1400:  # at 1400 px every table fits without scrolling sideways (on a phone rows stack)
            assert sideways == 0, f"{name}: a table scrolls {sideways} px sideways at {width} px"
        assert _screenshot(page, width, tmp_path).stat().st_size > 10_000


def test_validate_html_has_what_markdown_has(reports):
    page, md = reports["validate"].read_text(), reports["md"]
    assert "<pre>" not in page and "# edgekit" not in page and "`" not in page  # no raw Markdown
    assert page.count('class="v fail"') >= 1 and page.count('class="v pass"') >= 3  # coloured verdicts
    for line in md.splitlines():  # the CI, McNemar and localization lines of the Markdown
        if "95% CI" in line or "first departure" in line or "no departing op" in line:
            assert line.split(": ", 1)[1].replace("`", "'").replace("'", "&#x27;") in page, line
    assert page.count("<figcaption>confusion matrix: reference") == 1  # the reference's matrix once, not per candidate
    lower = page.lower()
    assert "<script" not in lower and "<link " not in lower and "http" not in lower  # self-contained


def test_histogram_counts_exact_zeros_apart():
    import numpy as np

    from edgekit.checks.stream import ErrorAccumulator

    acc = ErrorAccumulator(1e-5, 1e-3)
    ref = np.linspace(-1, 1, 400, dtype=np.float32).reshape(40, 10)
    cand = ref.copy()
    cand[:10] += 1e-3  # 100 elements differ, 300 are exactly equal
    acc.add(ref, cand)
    h = acc.result()["histogram_log10_abs"]
    assert h["zeros"] == 300 and sum(h["counts"]) == 100 and h["sampled"] == 400
    assert h["edges"][0] <= -3 <= h["edges"][-1]  # log10(1e-3), within float32 rounding
