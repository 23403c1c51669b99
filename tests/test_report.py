"""report.html: the payload, escaping of hostile data, offline-ness, size and thumbnails."""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import re
from dataclasses import replace
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from labelaudit.audit import find_issues
from labelaudit.data import Dataset, load_dataset
from labelaudit.decisions import mark_reviewed
from labelaudit.gap import diagnose
from labelaudit.report import build_payload, render_report
from labelaudit.scan import ScanResult, ScanSettings, scan
from labelaudit.thumbnails import MAX_THUMBNAIL_BYTES, array_thumbnail_data_uri, thumbnail_data_uri

from .conftest import (
    HOSTILE_CLASS,
    HOSTILE_FILE,
    HOSTILE_ID,
    HOSTILE_LABEL,
    HOSTILE_TEXT,
    make_table,
)

DATA_BLOCK = re.compile(r'<script type="application/json" id="review-data">(.*?)</script>', re.S)


class Structure(HTMLParser):
    """Records the document's tags and attribute names: the skeleton data must never change."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self.text = [], [], []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, tuple(sorted(name for name, _ in attrs))))
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if not self._in_script:
            self.text.append(data)


def parse(html: str) -> Structure:
    parser = Structure()
    parser.feed(html)
    parser.close()
    return parser


def review_data(html: str) -> dict:
    blocks = DATA_BLOCK.findall(html)
    assert len(blocks) == 1
    return json.loads(blocks[0])


def render(result) -> str:
    return render_report(result, result.summary())


def decoded_size(uri: str) -> int:
    assert uri.startswith(("data:image/png;base64,", "data:image/jpeg;base64,"))
    return len(base64.b64decode(uri.split(",", 1)[1]))


# -- payload -----------------------------------------------------------------------------------


def test_image_payload_lists_flagged_samples_most_likely_first(image_review):
    _, result = image_review
    review = build_payload(result, result.summary())["review"]
    flagged = result.issues[result.issues["is_label_issue"]].sort_values("rank")
    assert review["n_flagged"] == len(flagged) == result.audit["n_flagged"] > 0
    assert [r["id"] for r in review["rows"]] == flagged["id"].tolist()
    assert [r["rank"] for r in review["rows"]] == list(range(1, len(flagged) + 1))
    assert re.fullmatch(r"[0-9a-f]{16}", review["report_id"])
    assert review["classes"] == list(result.dataset.classes)
    for row in review["rows"]:
        assert row["given_label"] in review["classes"]
        assert row["suggested_label"] in review["classes"]
        assert 0 <= row["label_quality"] <= 1
        assert decoded_size(row["thumbnail"]) < 10_000


def test_each_row_carries_every_members_own_label_quality(image_review):
    _, result = image_review
    review = build_payload(result, result.summary())["review"]
    assert review["members"] == ["cnn", "knn", "logreg", "knn_embedding", "dynamics"]
    assert review["voting"] == ["cnn", "knn", "logreg", "knn_embedding"]
    by_id = result.issues.set_index("id")
    for row in review["rows"]:
        expected = [round(float(by_id.loc[row["id"], f"quality_{m}"]), 3)
                    for m in review["members"]]
        assert row["evidence"] == expected


def test_text_and_tabular_rows_carry_their_content(text_review, tmp_path):
    _, result = text_review
    review = build_payload(result, result.summary())["review"]
    rows = review["rows"]
    assert review["members"] == review["voting"] == ["knn", "logreg", "naive_bayes"]
    texts = dict(zip(result.dataset.ids, result.dataset.inputs, strict=True))
    for row in rows:
        assert texts[row["id"]].startswith(row["text"]) and row["text_length"] >= len(row["text"])
    long = [r for r in rows if r["text_length"] > 10_000]
    assert long and all(len(r["text"]) == 5_000 for r in long)  # long texts are cut, and say so

    frame, _ = make_table(n=90, noise_rate=0.1)
    frame = frame.rename(columns={"f0": "<b>f0</b>"})
    path = tmp_path / "table.csv"
    frame.to_csv(path, index=False)
    table = scan(path, ScanSettings(epochs=6, cv=3, audit="always"))
    review = build_payload(table, table.summary())["review"]
    assert review["feature_columns"] == list(table.dataset.inputs.columns)
    assert "<b>f0</b>" in review["feature_columns"]
    first = review["rows"][0]
    values = table.dataset.inputs.iloc[list(table.dataset.ids).index(first["id"])]
    assert first["values"][-1] == str(values.iloc[-1])  # the categorical column, as text
    assert float(first["values"][1]) == pytest.approx(values.iloc[1], rel=1e-5)


def test_top_k_caps_the_embedded_samples_and_the_page_says_so(image_review):
    _, result = image_review
    capped = replace(result, settings=replace(result.settings, top_k=3))
    html = render(capped)
    data = review_data(html)
    assert data["n_embedded"] == len(data["rows"]) == 3
    n = result.audit["n_flagged"]
    assert f"top 3 of {n} flagged samples" in " ".join(parse(html).text)
    assert "--top-k 3" in html


def test_report_without_audit_keeps_header_and_gap_and_says_why(tmp_path):
    frame, _ = make_table(n=60)
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    result = scan(path, ScanSettings(epochs=6, cv=3, audit="never"))
    assert result.issues is None
    html = render(result)
    text = " ".join(" ".join(parse(html).text).split())
    assert "No audit ran." in text and "--audit never" in text
    assert "The generalization gap" in text and result.verdict.regime in text
    assert 'src="data:image/svg+xml;base64,' in html
    assert 'id="samples"' not in html
    assert review_data(html)["rows"] == []


def test_reviewed_samples_are_left_out_of_the_next_report(image_review):
    _, result = image_review
    first = result.issues[result.issues["is_label_issue"]].iloc[0]["id"]
    decisions = pd.DataFrame({"id": [first], "decision": ["keep"], "new_label": [""]})
    rescanned = replace(result, issues=mark_reviewed(result.issues, decisions))
    html = render(rescanned)
    ids = [r["id"] for r in review_data(html)["rows"]]
    assert first not in ids and len(ids) == result.audit["n_flagged"] - 1
    assert "reviewed earlier, left out" in html


# -- escaping and offline ----------------------------------------------------------------------


def test_hostile_names_are_data_not_markup(image_review, text_review):
    for (_, result), hostile in ((image_review, [HOSTILE_FILE, HOSTILE_CLASS]),
                                 (text_review, [HOSTILE_TEXT, HOSTILE_LABEL, HOSTILE_ID])):
        html = render(result)
        doc = parse(html)
        # Exactly our two scripts: the JSON data block and the page script.
        assert [s.get("type") for s in doc.scripts] == ["application/json", None]
        assert not any(name.startswith("on") for _, names in doc.tags for name in names)
        assert html.count("</script>") == 2
        for value in hostile:
            assert value not in html  # never verbatim, only escaped
        data = review_data(html)
        strings = json.dumps(data, ensure_ascii=False)
        embedded = {r["id"] for r in data["rows"]} | set(data["classes"]) | {
            r.get("text", "")[:len(HOSTILE_TEXT)] for r in data["rows"]}
        for value in hostile:
            assert value in embedded or value in strings, value


def test_the_page_is_offline_and_only_our_script_may_run(image_review):
    _, result = image_review
    html = render(result)
    outside_data = DATA_BLOCK.sub("", html)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", outside_data, re.I)
    assert "@import" not in html and "url(" not in outside_data
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]+)">', html)[1]
    assert "default-src 'none'" in csp and "img-src data:" in csp
    script = re.search(r"<script>(.*?)</script>", html, re.S)[1]
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp  # the page's own script, and nothing else


_hostile = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(_hostile, min_size=2, max_size=3, unique=True),
       ids=st.lists(_hostile, min_size=12, max_size=12, unique=True),
       texts=st.lists(st.one_of(_hostile, st.just("</script><!--"), st.just("\x00\u2028")),
                      min_size=12, max_size=12))
def test_any_names_and_texts_leave_the_page_structure_alone(names, ids, texts):
    hostile_html = render(_text_result(names, ids, texts))
    assert parse(hostile_html).tags == _benign_tags(len(names))
    data = review_data(hostile_html)
    assert data["classes"] == names
    by_id = {r["id"]: r for r in data["rows"]}
    assert set(by_id) <= set(ids)
    for i, text in zip(ids, texts, strict=True):
        if i in by_id:
            assert by_id[i]["text"] == text


@functools.cache
def _benign_tags(n_classes: int) -> list:
    """The page skeleton for the same shape of data with plain names."""
    benign = _text_result([f"c{i}" for i in range(n_classes)], [f"i{i:02d}" for i in range(12)],
                          ["plain"] * 12)
    return parse(render(benign)).tags


def _text_result(names, ids, texts) -> ScanResult:
    """A ScanResult for arbitrary strings: a real cleanlab audit on fixed probabilities."""
    labels = np.arange(12) % len(names)
    pred_probs = np.full((12, len(names)), 0.1 / max(1, len(names) - 1))
    pred_probs[np.arange(12), labels] = 0.9
    for i in (0, 5, 7):  # confidently predicted as another class: the likely label errors
        pred_probs[i] = 0.1 / max(1, len(names) - 1)
        pred_probs[i, (labels[i] + 1) % len(names)] = 0.9
    ds = Dataset(path="<hostile>.csv", kind="text", ids=np.array(ids, dtype=object),
                 labels=labels, classes=tuple(names), inputs=np.array(texts, dtype=object),
                 label_column="label", text_column="text")
    issues, estimates = find_issues(labels, pred_probs, ids=ds.ids, classes=ds.classes)
    history = _history()
    return ScanResult(dataset=ds, history=history, verdict=diagnose(history),
                      audit={"ran": True, "reason": "--audit always", **estimates},
                      issues=issues, pred_probs=pred_probs,
                      settings=ScanSettings(audit="always"), timings={"total": 0.0})


def _history():
    epochs = np.arange(1, 11)
    return pd.DataFrame({"fold": 1, "epoch": epochs, "train_loss": 1 / epochs,
                         "val_loss": 1 / epochs + 0.03 * epochs,
                         "gap": 0.03 * epochs})


# -- size and thumbnails -----------------------------------------------------------------------


def test_a_1000_sample_image_report_stays_small(tmp_path):
    """1,000 flagged noise images (the worst case for compression) embed in well under 15 MB."""
    rng = np.random.default_rng(0)
    root = tmp_path / "noise"
    n, k = 1100, 4
    for i in range(n):
        folder = root / f"c{i % k}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(
            folder / f"{i:05d}.png")
    ds = load_dataset(root)
    pred_probs = np.full((n, k), 0.02)
    wrong = (ds.labels + 1) % k
    pred_probs[np.arange(n), np.where(np.arange(n) < 1050, wrong, ds.labels)] = 0.94
    issues, estimates = find_issues(ds.labels, pred_probs, ids=ds.ids, classes=ds.classes)
    assert estimates["n_flagged"] >= 1000
    history = _history()
    result = ScanResult(dataset=ds, history=history, verdict=diagnose(history),
                        audit={"ran": True, "reason": "test", **estimates}, issues=issues,
                        pred_probs=pred_probs, settings=ScanSettings(), timings={"total": 0.0})
    html = render(result)
    data = review_data(html)
    assert data["n_embedded"] == len(data["rows"]) == 1000  # the default --top-k
    assert len(html.encode("utf-8")) < 15_000_000
    assert max(decoded_size(r["thumbnail"]) for r in data["rows"]) <= MAX_THUMBNAIL_BYTES


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L", "I;16", "CMYK", "P"])
def test_thumbnails_of_big_images_in_any_mode_are_small(tmp_path, mode):
    rng = np.random.default_rng(1)
    rgb = Image.fromarray(rng.integers(0, 256, (900, 1200, 3), dtype=np.uint8))
    image = rgb.convert(mode) if mode != "I;16" else Image.fromarray(
        rng.integers(0, 65535, (900, 1200), dtype=np.uint16))
    path = tmp_path / ("big.tif" if mode in ("I;16", "CMYK") else "big.png")
    image.save(path)
    uri = thumbnail_data_uri(path)
    assert decoded_size(uri) <= MAX_THUMBNAIL_BYTES < 10_000
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert max(thumb.size) <= 96 and thumb.mode in ("L", "RGB")


def test_small_images_keep_their_pixels(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(1, 8, 8)
    uri = array_thumbnail_data_uri(pixels)
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert thumb.size == (8, 8)
        assert np.array_equal(np.asarray(thumb.convert("L")), pixels[0])  # PNG: exact
