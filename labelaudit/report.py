"""Render report.html: Python computes a payload, a Jinja template (autoescaped) lays it out."""

from __future__ import annotations


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    return Environment(loader=PackageLoader("labelaudit", "templates"),
                       autoescape=select_autoescape(default=True, default_for_string=True))


def render_report(result, summary: dict) -> str:
    """The report page as one self-contained HTML string."""
    flagged = []
    if result.issues is not None:
        top = result.issues[result.issues["is_label_issue"]].head(result.settings.top_k)
        flagged = top.to_dict("records")
    return _environment().get_template("report.html.j2").render(summary=summary, flagged=flagged)
