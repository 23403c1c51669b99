"""The reviewer's view of a flagged sample in a real browser: a table's values beside the class
medians, a text's weighing words marked, and bulk decisions on the samples shown, with undo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labelaudit.explain import word_evidence

from . import test_report_browser as shared
from . import test_report_layout as layout

browser, watched, rows = shared.browser, shared.watched, shared.rows
text_report, table_report = shared.text_report, layout.table_report
image_report = shared.image_report

pytestmark = pytest.mark.browser


def why(page, n: int = 0):
    return page.locator("#samples tbody tr.why").nth(n)


def test_a_table_row_shows_its_values_beside_the_class_medians(watched, table_report):
    page = watched.open(table_report)
    first = rows(page).nth(0)
    given = first.locator("td:nth-child(4)").inner_text()
    suggested = first.locator("td:nth-child(5)").inner_text()
    grid = why(page).locator(".medians .mini")
    heads = grid.locator(".h").all_inner_texts()
    assert heads == ["column", "this sample", f"{given} median", f"{suggested} median"]
    cells = grid.locator(":scope > span:not(.h)").all_inner_texts()
    assert len(cells) == 4 * 5  # the five most telling columns
    # The sample's own value is the one its values list shows for that column.
    values = dict(zip(first.locator(".values .k").all_inner_texts(),
                      first.locator(".values .v").all_inner_texts(), strict=True))
    name, value = cells[0], cells[1]
    if name in values:
        assert values[name] == value
    # Numeric columns come first ordered by how much more they speak for the suggestion.
    scores = [float(t.split(": ")[1].split()[0]) for t in
              [k.get_attribute("title") for k in grid.locator(".k").all()] if ": n/a" not in t]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_a_text_marks_the_words_that_weigh_for_each_class(watched, text_report, text_review):
    _, result = text_review
    page = watched.open(text_report)
    first = rows(page).nth(0)
    box = why(page).locator(".words")
    lines = box.locator(".word-line")
    assert lines.count() == 2
    given_words = lines.nth(0).locator("mark").all_inner_texts()
    suggested_words = lines.nth(1).locator("mark").all_inner_texts()
    assert suggested_words  # the words that speak for the suggestion are named
    # The same words are marked inside the text itself, as elements built from plain text.
    marked = first.locator(".text mark")
    assert {m.lower() for m in marked.all_inner_texts()} <= set(given_words) | set(
        suggested_words)
    assert first.locator(".text mark.w-suggested").count() > 0
    assert page.evaluate("document.querySelectorAll('#samples mark *').length") == 0
    # The page shows what word_evidence computes from the data.
    ds = result.dataset
    k = list(ds.ids).index(first.locator(".id").inner_text())
    flag = result.issues.set_index("id").loc[ds.ids[k]]
    index = {c: i for i, c in enumerate(ds.classes)}
    expected = word_evidence(ds.inputs, ds.labels, len(ds.classes), np.array([k]),
                             np.array([index[flag["given_label"]]]),
                             np.array([index[flag["suggested_label"]]]))[0]
    assert [given_words, suggested_words] == expected


def test_bulk_decisions_on_the_shown_samples_undo_exactly_those(watched, image_report,
                                                                image_review, tmp_path):
    _, result = image_review
    page = watched.open(image_report)
    flagged = shared.flagged(result)
    # One decision by hand first: the undo must give it back.
    rows(page).nth(0).get_by_role("button", name="Remove").click()
    removed = rows(page).nth(0).locator(".id").inner_text()
    given = flagged.loc[flagged["id"] == removed, "given_label"].iloc[0]
    page.select_option("#filter-given", value=given)
    n = int((flagged["given_label"] == given).sum())
    assert page.inner_text("#bulk-accept") == f"Accept the suggestion for all {n} shown"
    assert page.inner_text("#bulk-keep") == f"Keep all {n} shown"
    assert page.locator("#bulk-undo").is_hidden()
    page.click("#bulk-accept")
    assert f"Reviewed {n} of" in page.inner_text("#progress")
    statuses = rows(page).locator(".status").all_inner_texts()
    suggested = rows(page).locator("td:nth-child(5)").all_inner_texts()
    assert statuses == [f"relabeled to {s}" for s in suggested]
    assert page.inner_text("#bulk-undo") == f"Undo: accepted {n} suggestions"

    # Export reflects the bulk decision: every shown sample relabeled to its suggestion.
    exported = _export(page, tmp_path / "after.csv")
    shown = flagged[flagged["given_label"] == given]
    assert exported.set_index("id").loc[shown["id"], "new_label"].tolist() == \
        shown["suggested_label"].tolist()
    assert len(exported) == n

    # One click restores exactly the earlier decisions of those samples: the removal is back.
    page.click("#bulk-undo")
    assert page.locator("#bulk-undo").is_hidden()
    assert "Reviewed 1 of" in page.inner_text("#progress")
    exported = _export(page, tmp_path / "undone.csv")
    assert exported.to_dict("records") == [
        {"id": removed, "given_label": given, "decision": "remove", "new_label": ""}]

    # Keep all shown, on another filter, then reload: decisions persist.
    page.select_option("#filter-given", value="")
    page.click("#bulk-keep")
    assert f"Reviewed {len(flagged)} of" in page.inner_text("#progress")
    assert f"keep {len(flagged)}" in page.inner_text("#progress")
    page.reload()
    page.wait_for_load_state("load")
    assert f"keep {len(flagged)}" in page.inner_text("#progress")


def _export(page, path) -> pd.DataFrame:
    with page.expect_download(timeout=shared.DOWNLOAD_TIMEOUT_MS) as download:
        page.click("#export")
    download.value.save_as(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False)
