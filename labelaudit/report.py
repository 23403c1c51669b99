"""Render report.html: Python computes a payload, a Jinja template (autoescaped) lays it out.

The page is one self-contained file: styles, script, the loss plot and the thumbnails are all
inline, and a Content-Security-Policy forbids every network load. Static sections (header, the
gap, label health) are rendered by Jinja; the flagged samples travel as JSON inside
``<script type="application/json">`` and the page's script draws them with ``textContent`` only,
so nothing from the data is ever parsed as HTML.
"""

from __future__ import annotations

import base64
import hashlib
import math

import numpy as np

from .settings import SHOWN

# Longest text embedded per sample; longer texts are cut (issues.csv and the data keep them whole).
MAX_TEXT_CHARS = 5_000
# Heatmap of the joint distribution up to this many classes; beyond it only the top pairs table.
MAX_HEATMAP_CLASSES = 20
TOP_PAIRS = 10
# A table row's comparison with the class medians lists its most telling columns, this many.
TOP_COLUMNS = 8


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("labelaudit", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def render_report(result, summary: dict) -> str:
    """The report page as one self-contained HTML string.

    >>> from labelaudit.scan import scan
    >>> result = scan("datasets/wine-noisy.csv")
    >>> "Export decisions" in render_report(result, result.summary())
    True
    """
    from markupsafe import Markup

    env = _environment()
    script = env.loader.get_source(env, "report.js")[0]
    style = env.loader.get_source(env, "report.css")[0]
    # The script is allowed by its hash, so even a tag that slipped through escaping cannot run.
    script_hash = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    html = env.get_template("report.html.j2").render(
        page=build_payload(result, summary), script=Markup(script), style=Markup(style),
        script_hash=script_hash,
    )
    # Lone surrogates (undecodable file names) cannot be written as UTF-8; show them as U+FFFD.
    return html.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


def build_payload(result, summary: dict) -> dict:
    """Everything the page shows, as plain data: header, gap, label health and the review rows.

    `review` is embedded as JSON for the page's script; the rest is laid out by the template.

    >>> from labelaudit.scan import scan
    >>> result = scan("datasets/wine-noisy.csv")
    >>> page = build_payload(result, result.summary())
    >>> page["review"]["n_embedded"] <= result.settings.top_k
    True
    """
    return {
        "header": _header(summary),
        "gap": _gap(result, summary),
        "health": _health(result, summary),
        "review": _review(result, summary),
    }


def report_id(path: str, ids, created: str) -> str:
    """A short stable id for one report, keying its decisions in the browser's storage.

    >>> report_id("data.csv", ["0", "1"], "2024-01-01T00:00:00+00:00")
    '7443f830aaa82b0c'
    """
    digest = hashlib.sha256()
    for part in (str(path), *map(str, ids), str(created)):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _header(summary: dict) -> dict:
    ds = summary["dataset"]
    settings = summary.get("settings", {})
    return {
        "path": ds["path"],
        "kind": ds["kind"],
        "n_samples": ds["n_samples"],
        "n_classes": ds["n_classes"],
        "n_skipped": ds.get("n_skipped", 0),
        "warnings": ds.get("warnings", []),
        "label_column": ds.get("label_column"),
        "text_column": ds.get("text_column"),
        "version": summary.get("version"),
        "created": summary.get("created"),
        "settings": [(k, settings[k]) for k in SHOWN if settings.get(k) is not None],
        "total_seconds": summary.get("timings", {}).get("total"),
        "probabilities": probabilities_source(summary),
    }


def probabilities_source(summary: dict) -> str:
    """Whose model the audit's probabilities came from, in a sentence (report and terminal);
    with --embeddings or --encoder, also whether the embedding members joined (audit.gate).

    >>> probabilities_source({"audit": {"source": "pred_probs"},
    ...                       "settings": {"pred_probs": "probs.csv"}})
    "your model's (--pred-probs probs.csv); labelaudit trained nothing"
    """
    settings = summary.get("settings", {})
    if summary["audit"].get("source") == "pred_probs":
        return (f"your model's (--pred-probs {settings.get('pred_probs')}); labelaudit trained "
                "nothing")
    gate = summary["audit"].get("gate")
    return "labelaudit's own models, trained out of fold (--cv)" + (f"; {gate}" if gate else "")


def _gap(result, summary: dict) -> dict:
    from .gap import fold_facts
    from .scan import verdict_fold

    gap = summary["gap"]
    history = result.history
    plot = None
    if len(history):  # (--pred-probs without --history: no curves to draw)
        svg = result.history_svg()
        # As an <img> the SVG cannot run script or fetch anything, whatever its text contains.
        plot = "data:image/svg+xml;base64," + base64.b64encode(svg.encode("utf-8")).decode()
    n_folds = int(history["fold"].nunique()) if len(history) else 0
    # The verdict is the monitor fold's (scan._read_gap); the plot draws every fold, whose
    # own facts (best epochs, epochs only some reached) are said beside it, not as a verdict.
    monitor = verdict_fold(history)
    return {
        "monitor_fold": monitor,
        "fold_facts": fold_facts(history)["lines"] if n_folds > (gap.get("folds") or 1) else [],
        "regime": gap["regime"],
        "steep": gap["steep"],
        "advice": gap["advice"],
        "evidence": list(gap.get("evidence", [])),
        "growth": gap.get("growth"),
        "epochs": gap.get("epochs"),
        "best_val_epoch": gap.get("best_val_epoch"),
        "climb_start_epoch": gap.get("climb_start_epoch"),
        "n_folds": n_folds,
        # The plot draws the verdict's one fold apart when others trained too (plot._draw_gap).
        "verdict_line": n_folds > 1 and gap.get("folds") == 1,
        "plot": plot,
        # Whose curves: labelaudit's monitor fold, your model's --history, or none at all.
        "source": ("labelaudit" if summary["audit"].get("source") != "pred_probs" else
                   "history" if n_folds else "none"),
        "history_file": summary.get("settings", {}).get("history"),
    }


def _health(result, summary: dict) -> dict:
    audit = summary["audit"]
    ds = summary["dataset"]
    health = {"ran": bool(audit.get("ran")), "reason": audit.get("reason", ""),
              "n_samples": ds["n_samples"]}
    if not health["ran"] or result.issues is None:
        return health
    classes = list(ds["classes"])
    n = ds["n_samples"]
    issues = result.issues
    flagged_by_class = issues[issues["is_label_issue"]].groupby("given_label").size()
    counts = ds.get("class_counts", {})
    rates = audit.get("per_class_issue_rate", {})
    per_class = [{"name": c, "n": int(counts.get(c, 0)), "flagged": int(flagged_by_class.get(c, 0)),
                  "rate": _finite(rates.get(c, 0.0))} for c in classes]
    joint = np.asarray(audit.get("joint") or np.zeros((len(classes), len(classes))), dtype=float)
    pairs = []
    for i, j in zip(*np.nonzero(joint), strict=True):
        if i != j and joint[i, j] * n >= 0.5:
            pairs.append({"given": classes[i], "true": classes[j], "share": float(joint[i, j]),
                          "count": int(round(joint[i, j] * n))})
    pairs.sort(key=lambda p: (-p["share"], p["given"], p["true"]))
    heatmap = None
    if 1 < len(classes) <= MAX_HEATMAP_CLASSES:
        off = joint.copy()
        np.fill_diagonal(off, 0)
        top = off.max() or 1.0
        heatmap = {"classes": classes, "rows": [[{
            "count": int(round(joint[i, j] * n)),
            "diagonal": i == j,
            # Off-diagonal cells darken with their share of the largest confusion.
            "alpha": round(min(1.0, joint[i, j] / top), 3) if i != j else 0.0,
        } for j in range(len(classes))] for i in range(len(classes))]}
    health.update({
        "estimated_noise_rate": _finite(audit.get("estimated_noise_rate")),
        "n_flagged": audit.get("n_flagged"),
        "flagged_rate": _finite(audit.get("flagged_rate")),
        "accuracy_out_of_fold": _finite(audit.get("accuracy_out_of_fold")),
        "filter_by": audit.get("filter_by"),
        "per_class": per_class,
        "pairs": pairs[:TOP_PAIRS],
        "heatmap": heatmap,
        "n_reviewed_before": int(issues["reviewed"].sum()) if "reviewed" in issues else 0,
    })
    return health


def _review(result, summary: dict) -> dict:
    ds = result.dataset
    created = summary.get("created", "")
    review = {
        "report_id": report_id(ds.path, ds.ids, created),
        "kind": ds.kind,
        "classes": list(ds.classes),
        "feature_columns": [],
        "top_k": int(result.settings.top_k),
        "n_flagged": 0,
        "n_embedded": 0,
        "members": [],
        "rows": [],
    }
    if result.issues is None:
        return review
    flagged = result.issues[result.issues["is_label_issue"].astype(bool)]
    if flagged["rank"].notna().all():
        flagged = flagged.sort_values("rank", kind="stable")
    top = flagged.head(result.settings.top_k)
    # Each signal's own label quality (issues.csv's quality_<signal> columns), shown beside the
    # pooled score, with the members that flagged the label (flagged_by) marked. The training
    # dynamics rank but do not vote.
    evidence = [c for c in result.issues.columns if str(c).startswith("quality_")]
    review["members"] = [str(c).removeprefix("quality_") for c in evidence]
    members = list(result.audit.get("members") or review["members"])
    review["voting"] = list(result.audit.get("voters") or members)
    # Members too weak to vote count as not doubting: the bar stays at half of all of them.
    review["weak"] = [name for name in members if name not in review["voting"]]
    review["vote_needs"] = (len(members) + 1) // 2
    review["n_flagged"] = int(len(flagged))
    review["n_embedded"] = int(len(top))
    position = {str(i): k for k, i in enumerate(ds.ids)}
    values = {}
    if ds.kind == "tabular":
        review["feature_columns"] = [str(c) for c in ds.inputs.columns]
        # One bulk lookup: row-by-row .iloc is slow for thousands of mixed-type rows.
        wanted = [position[i] for i in top["id"].astype(str) if i in position]
        cells = ds.inputs.iloc[wanted].astype(object).to_numpy().tolist()
        values = {k: [_cell(v) for v in row] for k, row in zip(wanted, cells, strict=True)}
    rows = []
    for record in top.to_dict("records"):
        row = {
            "id": str(record["id"]),
            "given_label": str(record["given_label"]),
            "suggested_label": str(record["suggested_label"]),
            "label_quality": _finite(record["label_quality"], digits=6),
            "rank": None if _missing(record["rank"]) else int(record["rank"]),
            "evidence": [_finite(record[c], digits=3) for c in evidence],
            # The members whose own confident learning flagged the sample (the vote).
            "flagged_by": [] if _missing(record.get("flagged_by"))
            else [name for name in str(record["flagged_by"]).split(";") if name],
        }
        k = position.get(row["id"])
        if k in values:
            row["values"] = values[k]
        elif k is not None:
            row.update(_sample_content(ds, k))
        rows.append(row)
    review["rows"] = rows
    review.update(_why(result, rows, position))
    return review


# The reasons shown for image rows stop adding neighbour thumbnails past this many bytes of them.
MAX_NEIGHBOUR_BYTES = 3_000_000
N_NEIGHBOURS = 3


def _why(result, rows: list[dict], position: dict) -> dict:
    """Why each embedded row was flagged: the pooled top classes on every row, and a comparison
    with its given and suggested class (images: nearest neighbours; tables: class medians;
    text: the words that weigh most), added to the rows; returns the review-level parts."""
    from .explain import MEMBER_WORDS, top_classes

    ds = result.dataset
    extra = {"member_words": {m: MEMBER_WORDS.get(m, m) for m in MEMBER_WORDS}}
    at = np.array([position.get(r["id"], -1) for r in rows], dtype=np.int64)
    found = at >= 0
    if not found.any():
        return extra
    rows = [r for r, ok in zip(rows, found, strict=True) if ok]
    at = at[found]
    index = {c: i for i, c in enumerate(ds.classes)}
    given = np.array([index[r["given_label"]] for r in rows])
    suggested = np.array([index.get(r["suggested_label"], g) for r, g in zip(rows, given,
                                                                            strict=True)])
    if result.pred_probs is not None:
        probs = np.asarray(result.pred_probs)[at]
        for row, top, p, g in zip(rows, top_classes(probs), probs, given, strict=True):
            row["top"] = top
            row["given_p"] = round(float(p[g]), 3)
    trusted = _trusted(result, ds)
    explain = {"images": _why_images, "tabular": _why_table, "text": _why_text}[ds.kind]
    extra.update(explain(ds, rows, at, given, suggested, trusted) or {})
    return extra


def _trusted(result, ds) -> np.ndarray:
    """The samples whose label nobody doubts: what a class looks like."""
    flagged = set(result.issues.loc[result.issues["is_label_issue"].astype(bool), "id"]
                  .astype(str))
    return np.array([str(i) not in flagged for i in ds.ids], dtype=bool)


def _why_images(ds, rows, at, given, suggested, trusted) -> dict:
    from .explain import class_neighbours
    from .thumbnails import array_thumbnail_data_uri

    near = [class_neighbours(ds.inputs, ds.labels, at, wanted, trusted=trusted,
                             n_neighbors=N_NEIGHBOURS) for wanted in (given, suggested)]
    # A neighbour that is itself on the page reuses that row's thumbnail; any other is encoded
    # once from the loaded pixels (small: the page shows neighbours small).
    embedded = {int(k): i for i, k in enumerate(at)}
    refs, pool, spent = {}, [], 0
    for i, row in enumerate(rows):
        if spent > MAX_NEIGHBOUR_BYTES:
            break
        lists = []
        for found in near:
            ref = []
            for k in (int(k) for k in found[i] if k >= 0):
                if k not in refs:
                    item = {"id": str(ds.ids[k])}
                    if k in embedded:
                        item["row"] = embedded[k]
                    else:
                        item["thumbnail"] = array_thumbnail_data_uri(ds.inputs[k])
                        spent += len(item["thumbnail"])
                    refs[k] = len(pool)
                    pool.append(item)
                ref.append(refs[k])
            lists.append(ref)
        row["neighbours"] = lists
    return {"neighbours": pool}


def _why_table(ds, rows, at, given, suggested, trusted) -> dict:
    from .explain import class_centres, column_contrast

    centres, scale = class_centres(ds.inputs, ds.labels, len(ds.classes), trusted=trusted)
    cells = ds.inputs.iloc[at].astype(object).to_numpy().tolist()
    for row, values, g, s in zip(rows, cells, given, suggested, strict=True):
        values = [None if _missing(v) else v for v in values]
        contrast = column_contrast(values, centres[g], centres[s], scale)
        order = np.argsort(-np.nan_to_num(contrast, nan=-np.inf), kind="stable")
        row["contrast"] = [[int(j), _finite(contrast[j], digits=2)] for j in order[:TOP_COLUMNS]]
    return {"centres": [[_cell(v) for v in centre] for centre in centres]}


def _why_text(ds, rows, at, given, suggested, trusted) -> dict:
    from .explain import word_evidence

    words = word_evidence(ds.inputs, ds.labels, len(ds.classes), at, given, suggested,
                          random_state=0)
    for row, pair in zip(rows, words, strict=True):
        row["words"] = pair
    return {}


def _sample_content(ds, k: int) -> dict:
    """The thumbnail or text of image or text sample `k`."""
    if ds.kind == "images":
        from .thumbnails import array_thumbnail_data_uri, thumbnail_data_uri

        try:
            uri = thumbnail_data_uri(ds.files[k]) if ds.files is not None else None
        except (OSError, ValueError):
            uri = None  # moved or unreadable since the scan: fall back to the loaded pixels
        return {"thumbnail": uri or array_thumbnail_data_uri(ds.inputs[k])}
    text = str(ds.inputs[k])
    return {"text": text[:MAX_TEXT_CHARS], "text_length": len(text)}


def _cell(value) -> str:
    if _missing(value):
        return ""
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.6g}"
    return str(value)


def _missing(value) -> bool:
    try:
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _finite(value, digits: int | None = None):
    """A JSON-safe float: None for missing, NaN or infinite values."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, digits) if digits is not None else value
