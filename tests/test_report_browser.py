"""report.html in a real headless Chromium: review by click and keyboard, reload, export, apply.

Uses Playwright for Python with Debian's chromium (/usr/bin/chromium), or Playwright's own
Chromium when that is installed instead. Skips, saying why, when no browser can be launched.
"""

from __future__ import annotations

import os
import shutil
import struct
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labelaudit.apply import apply_decisions
from labelaudit.audit import find_issues
from labelaudit.data import load_dataset
from labelaudit.gap import diagnose
from labelaudit.scan import ScanResult, ScanSettings, scan, write_outputs

from .conftest import (
    HOSTILE_CLASS,
    HOSTILE_FILE,
    HOSTILE_ID,
    HOSTILE_LABEL,
    HOSTILE_TEXT,
    make_table,
)

pytestmark = pytest.mark.browser

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def _executables():
    """Chromium binaries to try: $LABELAUDIT_CHROMIUM, the system one, then Playwright's own."""
    found = [os.environ.get("LABELAUDIT_CHROMIUM"), "/usr/bin/chromium",
             shutil.which("chromium"), shutil.which("chromium-browser")]
    seen = []
    for path in found:
        if path and Path(path).exists() and path not in seen:
            seen.append(path)
    return [*seen, None]  # None: the browser `playwright install chromium` downloads


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install playwright")
    with sync_playwright() as playwright:
        reasons = []
        for executable in _executables():
            try:
                launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
                break
            except Error as exc:
                reasons.append(f"{executable or 'playwright chromium'}: {str(exc).splitlines()[0]}")
        else:
            pytest.skip("no headless Chromium could be launched (install Debian's chromium "
                        "package or run `playwright install chromium`): " + "; ".join(reasons))
        yield launched
        launched.close()


class Watched:
    """A page plus everything it did that a safe offline report must never do."""

    def __init__(self, page):
        self.page = page
        self.dialogs, self.errors, self.requests = [], [], []
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("request", lambda r: self.requests.append(r.url))

    def open(self, report: Path):
        self.page.goto(report.resolve().as_uri())
        self.page.wait_for_load_state("load")
        return self.page


# A busy 2-core CI runner can take longer than the page's 15 s to hand a download over.
DOWNLOAD_TIMEOUT_MS = 60_000


@pytest.fixture
def watched(browser):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    w = Watched(page)
    yield w
    context.close()
    assert w.errors == [], f"script errors on the page: {w.errors}"
    assert w.dialogs == [], f"the page opened dialogs (data executed?): {w.dialogs}"
    outside = [u for u in w.requests if not u.startswith(("file://", "data:", "blob:"))]
    assert outside == [], f"the report tried to load from the network: {outside}"


@pytest.fixture(scope="module")
def image_report(image_review, tmp_path_factory) -> Path:
    _, result = image_review
    out = tmp_path_factory.mktemp("image-report") / "report"
    write_outputs(result, out)
    return out / "report.html"


@pytest.fixture(scope="module")
def text_report(text_review, tmp_path_factory) -> Path:
    _, result = text_review
    out = tmp_path_factory.mktemp("text-report") / "report"
    write_outputs(result, out)
    return out / "report.html"


def rows(page):
    return page.locator("#samples tbody tr.item")


def wait_for_rows(page, n: int) -> None:
    """Wait until the table shows `n` rows (the search box waits a moment before filtering)."""
    from playwright.sync_api import expect

    expect(rows(page)).to_have_count(n)


def cell_texts(page, column: int) -> list[str]:
    return rows(page).locator(f"td:nth-child({column})").all_inner_texts()


def flagged(result):
    return result.issues[result.issues["is_label_issue"]].sort_values("rank")


# -- the review flow ---------------------------------------------------------------------------


def test_review_by_click_and_keyboard_survives_reload_then_exports_and_applies(
        watched, image_report, image_review, tmp_path):
    root, result = image_review
    page = watched.open(image_report)
    expected = flagged(result)
    n = len(expected)
    assert rows(page).count() == min(n, 50)
    assert cell_texts(page, 3) == expected["id"].tolist()[:50]

    # Filter by given class, then back to every class.
    given = expected["given_label"].iloc[0]
    page.select_option("#filter-given", value=given)
    assert set(cell_texts(page, 4)) == {given}
    assert rows(page).count() == int((expected["given_label"] == given).sum())
    page.select_option("#filter-given", value="")
    assert rows(page).count() == min(n, 50)

    ids = cell_texts(page, 3)
    suggested = cell_texts(page, 5)
    # Click: keep the first sample.
    rows(page).nth(0).get_by_role("button", name="Keep").click()
    # Keyboard: j moves to the second; s relabels it to the suggestion and moves on; x removes.
    page.keyboard.press("j")
    page.keyboard.press("s")
    page.keyboard.press("x")
    # Click: relabel the fourth to a class of our choosing from its list.
    fourth = rows(page).nth(3)
    options = fourth.locator("select option").all_inner_texts()[1:]
    target = options[-1]
    fourth.locator("select").select_option(label=target)
    assert "Reviewed 4 of" in page.inner_text("#progress")

    page.reload()
    page.wait_for_load_state("load")
    assert "Reviewed 4 of" in page.inner_text("#progress")
    status = rows(page).locator(".status").all_inner_texts()[:4]
    assert status[0].startswith("kept as")
    assert status[1] == f"relabeled to {suggested[1]}"
    assert status[2] == "removed"
    assert status[3] == f"relabeled to {target}"

    # Undo by keyboard on the selected (first) row.
    rows(page).nth(0).locator("td").first.click()
    page.keyboard.press("u")
    assert "Reviewed 3 of" in page.inner_text("#progress")
    rows(page).nth(0).get_by_role("button", name="Keep").click()

    with page.expect_download(timeout=DOWNLOAD_TIMEOUT_MS) as download:
        page.click("#export")
    assert download.value.suggested_filename == "decisions.csv"
    saved = tmp_path / "decisions.csv"
    download.value.save_as(saved)
    assert saved.read_text(encoding="utf-8").splitlines()[0] == "id,given_label,decision,new_label"
    decisions = pd.read_csv(saved, dtype=str, keep_default_na=False)
    given_of = dict(zip(expected["id"], expected["given_label"], strict=True))
    assert decisions.to_dict("records") == [
        {"id": ids[0], "given_label": given_of[ids[0]], "decision": "keep", "new_label": ""},
        {"id": ids[1], "given_label": given_of[ids[1]], "decision": "relabel",
         "new_label": suggested[1]},
        {"id": ids[2], "given_label": given_of[ids[2]], "decision": "remove", "new_label": ""},
        {"id": ids[3], "given_label": given_of[ids[3]], "decision": "relabel", "new_label": target},
    ]

    # The exported file is what apply takes: the relabeled image lands in its new class folder.
    applied = apply_decisions(root, saved, tmp_path / "fixed")
    moved = applied.changes.set_index("id").loc[ids[1], "new_path"]
    assert moved.split("/")[0] == suggested[1]
    assert (tmp_path / "fixed" / moved).read_bytes() == (root / ids[1]).read_bytes()
    assert not (tmp_path / "fixed" / ids[2]).exists()


def test_sort_by_any_column_and_search(watched, text_report, text_review):
    _, result = text_review
    page = watched.open(text_report)
    page.click("th[data-sort=label_quality]")
    quality = [float(q.split()[0]) for q in cell_texts(page, 6)]  # the pooled score
    assert quality == sorted(quality)
    page.click("th[data-sort=label_quality]")
    quality = [float(q.split()[0]) for q in cell_texts(page, 6)]  # the pooled score
    assert quality == sorted(quality, reverse=True)
    assert page.get_attribute("th[data-sort=label_quality]", "aria-sort") == "descending"
    page.click("th[data-sort=id]")
    assert cell_texts(page, 3) == sorted(cell_texts(page, 3), key=str.lower)

    # Search by text: every flagged post that mentions the word, and no other.
    word = "long"
    page.fill("#search", word)
    wait_for_rows(page, sum(word in i.lower() or word in t.lower() for i, t in _texts(result)))
    page.fill("#search", "")
    wait_for_rows(page, len(flagged(result)))


def _texts(result):
    texts = dict(zip(result.dataset.ids, result.dataset.inputs, strict=True))
    return [(i, texts[i]) for i in flagged(result)["id"]]


def test_5000_flagged_samples_stay_responsive(watched, tmp_path):
    frame, _ = make_table(n=5200)
    path = tmp_path / "big.csv"
    frame.to_csv(path, index=False)
    ds = load_dataset(path)
    k = len(ds.classes)
    pred_probs = np.full((ds.n_samples, k), 0.02)
    pred_probs[np.arange(ds.n_samples), np.where(np.arange(ds.n_samples) < 5100,
                                                 (ds.labels + 1) % k, ds.labels)] = 0.96
    issues, estimates = find_issues(ds.labels, pred_probs, ids=ds.ids, classes=ds.classes)
    assert estimates["n_flagged"] >= 5000
    epochs = np.arange(1, 9)
    history = pd.DataFrame({"fold": 1, "epoch": epochs, "train_loss": 1 / epochs,
                            "val_loss": 1 / epochs + 0.05 * epochs, "gap": 0.05 * epochs})
    result = ScanResult(dataset=ds, history=history, verdict=diagnose(history),
                        audit={"ran": True, "reason": "test", **estimates}, issues=issues,
                        pred_probs=pred_probs, settings=ScanSettings(top_k=5000),
                        timings={"total": 0.0})
    write_outputs(result, tmp_path / "report")
    page = watched.open(tmp_path / "report" / "report.html")
    assert "of 5,000" in page.inner_text("#page-info")

    def timed(script: str) -> float:
        return page.evaluate(f"() => {{ const t = performance.now(); {script}; "
                             "return performance.now() - t; }")

    took = {
        "sort": timed("document.querySelector('th[data-sort=label_quality]').click()"),
        "filter": timed("const s = document.getElementById('filter-given'); "
                        "s.value = s.options[1].value; s.dispatchEvent(new Event('change'))"),
        "next page": timed("document.getElementById('next').click()"),
        "page size": timed("const s = document.getElementById('page-size'); s.value = '250'; "
                           "s.dispatchEvent(new Event('change'))"),
    }
    # Generous for a shared CI machine; on a laptop each is a few milliseconds.
    assert max(took.values()) < 1000, took
    page.keyboard.press("n")
    page.keyboard.press("j")
    page.keyboard.press("x")
    assert "remove 1" in page.inner_text("#progress")


# -- looks and safety --------------------------------------------------------------------------


def test_screenshot_of_the_rendered_report(watched, image_report, tmp_path):
    page = watched.open(image_report)
    rows(page).nth(0).get_by_role("button", name="Keep").click()
    page.keyboard.press("j")
    page.keyboard.press("s")
    page.evaluate("window.scrollTo(0, 0)")  # a sticky bar would otherwise show mid-page
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=True)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1280 and height > 1500  # header, gap, label health and the samples
    assert len(data) > 50_000  # a real rendering, not a blank page
    plot = page.locator("img.plot")
    assert plot.evaluate("img => img.complete && img.naturalWidth > 300")
    thumbs = page.locator("img.thumb")
    assert thumbs.count() == rows(page).count()
    assert thumbs.first.evaluate("img => img.complete && img.naturalWidth > 0")


def test_each_row_says_why_it_was_flagged(watched, image_report, image_review):
    _, result = image_review
    page = watched.open(image_report)
    first = flagged(result).iloc[0]
    why = page.locator("#samples tbody tr.why").nth(0)
    # The pooled ensemble's three likeliest classes with their probabilities, best first.
    k = list(result.dataset.ids).index(first["id"])
    probs = result.pred_probs[k]
    best = np.argsort(-probs, kind="stable")[:3]
    lines = why.locator(".probs .prob")
    names = [result.dataset.classes[c] for c in best]
    assert lines.locator(".label").all_inner_texts()[:3] == names
    assert lines.locator(".pct").all_inner_texts()[0] == f"{round(100 * probs[best[0]])}%"
    # The given label is named among them, or beneath them.
    assert lines.filter(has_text="given").locator(".label").inner_text() == first["given_label"]

    # "N of M checks doubt this label", the checks named in plain words.
    voting = ["cnn", "knn", "logreg", "knn_embedding"]
    doubting = [m for m in voting if m in first["flagged_by"].split(";")]
    assert why.locator(".doubt-count").inner_text() == \
        f"{len(doubting)} of {len(voting)} checks doubt this label"
    # A sample is flagged when at least half of the members' own confident learning flags it.
    assert len(doubting) >= len(voting) / 2
    words = {"cnn": "the network", "knn": "neighbours in the raw data",
             "logreg": "a linear model", "knn_embedding": "neighbours in the network's view"}
    shown = why.locator(".member.doubt").all_inner_texts()
    assert sorted(shown) == sorted(f"✗ {words[m]}" for m in doubting)
    assert [m.get_attribute("data-member") for m in why.locator(".member.doubt").all()] == \
        doubting
    # The exact numbers stay a hover away; the training history ranks without a vote, and says so.
    for member in voting:
        title = why.locator(f".member[data-member={member}]").get_attribute("title")
        assert f"{round(float(first[f'quality_{member}']), 3):.3f}" in title
        assert "has no vote" not in title
    history = why.locator(".member[data-member=dynamics]")
    assert "no vote" in history.inner_text() and "has no vote" in history.get_attribute("title")

    # The nearest unflagged images with the given and with the suggested label, as thumbnails.
    groups = why.locator(".near-group")
    assert groups.locator(".label").all_inner_texts() == [first["given_label"],
                                                          first["suggested_label"]]
    thumbs = groups.nth(0).locator("img.nthumb")
    assert thumbs.count() == 3
    assert thumbs.first.evaluate("img => img.complete && img.naturalWidth > 0")
    labels = dict(zip(result.dataset.ids, result.dataset.labels, strict=True))
    for g, name in enumerate([first["given_label"], first["suggested_label"]]):
        for title in [t.get_attribute("title") for t in groups.nth(g).locator("img").all()]:
            assert result.dataset.classes[labels[title]] == name


def test_hostile_names_and_texts_render_as_text(watched, image_report, text_report, text_review):
    page = watched.open(image_report)
    assert page.locator(".id", has_text=HOSTILE_FILE).count() == 1
    assert HOSTILE_CLASS in page.inner_text("#health")
    assert page.locator("#filter-given option", has_text=HOSTILE_CLASS).count() == 1
    page.keyboard.press("s")
    assert page.evaluate("document.querySelectorAll('[onerror],[onload],[onmouseover]').length") \
        == 0

    page = watched.open(text_report)
    title = page.title()
    page.fill("#search", "alert(3)")
    wait_for_rows(page, 1)
    row = rows(page).nth(0)
    assert HOSTILE_TEXT.split(" end")[0].replace("\x01", "").replace("\x1f", "") in \
        row.inner_text().replace("\x01", "").replace("\x1f", "")
    page.fill("#search", "")
    wait_for_rows(page, len(flagged(text_review[1])))
    assert page.locator(".id", has_text=HOSTILE_ID).count() == 1
    assert page.locator(".label", has_text=HOSTILE_LABEL).count() >= 1
    for index in range(rows(page).count()):
        rows(page).nth(index).locator("td").first.click()
        page.keyboard.press("o")  # open every full text
    assert page.evaluate("document.scripts.length") == 2
    assert page.evaluate("document.querySelectorAll('#samples script, #samples b, "
                         "#samples img, #samples svg').length") == 0
    assert page.title() == title


def test_report_without_audit_opens_cleanly(watched, tmp_path):
    frame, _ = make_table(n=60)
    frame.to_csv(tmp_path / "t.csv", index=False)
    result = scan(tmp_path / "t.csv", ScanSettings(epochs=6, cv=3, audit="never"))
    write_outputs(replace(result), tmp_path / "report")
    page = watched.open(tmp_path / "report" / "report.html")
    assert "No audit ran." in page.inner_text("#health")
    assert page.locator("#samples").count() == 0
    assert page.locator("img.plot").evaluate("img => img.naturalWidth > 300")


def test_a_check_too_weak_to_vote_says_so(watched, tmp_path):
    from sklearn.datasets import make_gaussian_quantiles

    from labelaudit.noise import inject_noise

    # Nested shells: no line separates them, so the linear model is far behind the network.
    X, y = make_gaussian_quantiles(n_samples=600, n_features=4, n_classes=3, random_state=0)
    frame = pd.DataFrame(X, columns=list("abcd")).assign(label=inject_noise(y, 0.1,
                                                                             random_state=0))
    frame.to_csv(tmp_path / "shells.csv", index_label="id")
    result = scan(tmp_path / "shells.csv", ScanSettings(audit="always", cache_dir=None))
    assert "logreg" not in result.audit["voters"]
    write_outputs(result, tmp_path / "report")
    page = watched.open(tmp_path / "report" / "report.html")
    why = page.locator("#samples tbody tr.why").nth(0)
    voting = result.audit["voters"]
    first = flagged(result).iloc[0]
    doubting = [m for m in voting if m in first["flagged_by"].split(";")]
    assert why.locator(".doubt-count").inner_text() == \
        f"{len(doubting)} of {len(voting)} checks doubt this label (2 needed)"
    weak = why.locator(".member[data-member=logreg]")
    assert "too weak to vote" in weak.inner_text()
    assert "its doubt does not count" in weak.get_attribute("title")
