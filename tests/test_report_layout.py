"""report.html reads at every width: nothing in a review row or header overlaps anything else.

Each width is also saved as a screenshot (into $LABELAUDIT_SCREENSHOTS when set) for a person.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from labelaudit.scan import write_outputs

from . import test_report_browser as shared
from .conftest import make_table

# The browser and the image and text reports are the review tests' own fixtures.
browser, watched, rows = shared.browser, shared.watched, shared.rows
image_report, text_report = shared.image_report, shared.text_report

pytestmark = pytest.mark.browser

WIDTHS = (1440, 1024, 800, 390)

# The rendered boxes of every leaf element (and of its text, which may spill out of a box that
# does not clip it) in the review table's header and first rows; pairs that intersect, other than
# an element and its own ancestor, are overlaps a reader would see.
OVERLAPS = """
(limit) => {
  const boxes = [];
  const leafs = document.querySelectorAll(
    "#samples thead th, #samples tbody tr:nth-child(-n+" + limit + ") *");
  for (const el of leafs) {
    if (el.tagName === "OPTION" || el.closest("select") !== el && el.closest("select")) continue;
    const isLeaf = el.tagName === "SELECT" || el.tagName === "IMG" || el.tagName === "TH"
      || el.children.length === 0;
    if (!isLeaf) continue;
    const style = getComputedStyle(el);
    if (style.display === "none" || style.visibility === "hidden") continue;
    let r = el.getBoundingClientRect();
    if (r.width < 1 || r.height < 1) continue;
    let box = {l: r.left, t: r.top, r: r.right, b: r.bottom};
    const clips = style.overflow !== "visible" || el.tagName === "SELECT";
    if (!clips && el.textContent.trim()) {
      const range = document.createRange();
      range.selectNodeContents(el);
      const t = range.getBoundingClientRect();
      if (t.width > 0) box = {l: Math.min(box.l, t.left), t: Math.min(box.t, t.top),
                              r: Math.max(box.r, t.right), b: Math.max(box.b, t.bottom)};
    }
    boxes.push({el, box, name: el.tagName + "." + el.className + " '" +
                el.textContent.trim().slice(0, 30) + "'"});
  }
  const found = [];
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i], b = boxes[j];
      if (a.el.contains(b.el) || b.el.contains(a.el)) continue;
      const w = Math.min(a.box.r, b.box.r) - Math.max(a.box.l, b.box.l);
      const h = Math.min(a.box.b, b.box.b) - Math.max(a.box.t, b.box.t);
      if (w > 1.5 && h > 1.5) found.push(a.name + " overlaps " + b.name);
    }
  }
  return found.slice(0, 10);
}
"""

# Cells narrower than a few characters, and header words split over lines.
CRAMPED = """
(limit) => {
  const found = [];
  for (const td of document.querySelectorAll(
      "#samples tbody tr:nth-child(-n+" + limit + ") td")) {
    const width = td.getBoundingClientRect().width;
    if (td.cellIndex > 0 && width > 0 && width < 44) {  // the rank is a short number
      found.push("cell " + td.cellIndex + " is " + width + " px wide");
    }
  }
  for (const th of document.querySelectorAll("#samples thead th")) {
    if (!th.getBoundingClientRect().width) continue;
    const words = th.textContent.trim().split(/\\s+/).length;
    const range = document.createRange();
    range.selectNodeContents(th);
    const lines = new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    if (lines > words) found.push("header '" + th.textContent.trim() + "' breaks inside a word");
  }
  return found.slice(0, 10);
}
"""


@pytest.fixture(scope="module")
def table_report(tmp_path_factory) -> Path:
    from labelaudit.scan import ScanSettings, scan

    root = tmp_path_factory.mktemp("table-report")
    frame, _ = make_table(n=150, noise_rate=0.15, seed=2)
    frame.to_csv(root / "table.csv", index=False)
    result = scan(root / "table.csv", ScanSettings(epochs=6, cv=3, audit="always"))
    write_outputs(result, root / "report")
    return root / "report" / "report.html"


def _screenshot(page, name: str, tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LABELAUDIT_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.locator("#samples").scroll_into_view_if_needed()
    page.screenshot(path=str(path))
    return path


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("kind", ["images", "table", "text"])
def test_review_rows_do_not_overlap_at_any_width(
        watched, image_report, table_report, text_report, kind, width, tmp_path):
    report = {"images": image_report, "table": table_report, "text": text_report}[kind]
    page = watched.open(report)
    page.set_viewport_size({"width": width, "height": 900})
    assert rows(page).count() > 0
    overlaps = page.evaluate(OVERLAPS, 16)  # 8 samples, each with its reasons row
    shot = _screenshot(page, f"review-{kind}-{width}.png", tmp_path)
    assert overlaps == [], f"{kind} at {width} px ({shot}): {overlaps}"
    # Readable, not only apart: no column squeezed to a sliver, no header word broken in two.
    cramped = page.evaluate(CRAMPED, 16)
    assert cramped == [], f"{kind} at {width} px ({shot}): {cramped}"
    # Nothing wider than the window: no sideways scrolling to reach the decision buttons.
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{kind} at {width} px is {overflow} px wider than the window"
