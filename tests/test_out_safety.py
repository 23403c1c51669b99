"""--out and --cache are checked before any work, and a report replaces only what labelaudit wrote.

- A folder is a report only when its manifest (.labelaudit-manifest.json) says so; the entries the
  manifest lists are replaced, everything else in the folder survives.
- The cache never lies inside the dataset, and is used only when this user owns it (its entries
  are pickles).
- An --out or --cache that cannot be written is refused up front, not after training.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import labelaudit.scan
from labelaudit.cache import FoldCache, check_cache
from labelaudit.cli import app
from labelaudit.decisions import DECISION_COLUMNS
from labelaudit.errors import UsageError
from labelaudit.outputs import ASIDE, MANIFEST, check_out, recover, staged

from .test_bad_input import NO_DENIAL, _without_override, image_folder, snapshot, table

runner = CliRunner()
QUICK = ["--epochs", "2", "--cv", "2", "--quiet"]
SOMEONE_ELSE = 54321  # a uid and gid that own nothing here


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, " ".join(result.output.split())  # rich may wrap long paths; compare words


def leftovers(out: Path) -> list[str]:
    """Hidden staging or moved-aside folders next to --out."""
    return sorted(p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}."))


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "data" / "table.csv"
    path.parent.mkdir()
    table(n=30).to_csv(path, index=False)
    return path


@pytest.fixture
def no_training(monkeypatch):
    """A refusal must come before any work: reaching the scan fails the test (exit 1)."""
    def scan(*args, **kwargs):
        raise AssertionError("the scan started: the check came after the work")

    monkeypatch.setattr(labelaudit.scan, "scan", scan)


@pytest.fixture
def project(tmp_path) -> Path:
    """Somebody's folder that happens to hold a summary.json: no report of ours."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "summary.json").write_text("{}\n")
    (proj / "thesis.tex").write_text("t\n")
    (proj / "src" / "train.py").write_text("c\n")
    return proj


def write_manifest(folder: Path, files) -> None:
    (folder / MANIFEST).write_text(json.dumps({"tool": "labelaudit", "files": files}))


# -- 1. only a folder labelaudit wrote is replaced, and only what it wrote there -----------------


def test_scan_refuses_a_folder_with_a_summary_json_but_no_manifest(tmp_path, data, project,
                                                                   no_training):
    before = snapshot(project)
    result, words = run("scan", data, "--out", project, *QUICK)
    assert result.exit_code == 2, result.output
    assert f"--out {project} is not a labelaudit report" in words
    assert "older labelaudit" in words and "choose a new or empty folder" in words
    assert snapshot(project) == before and leftovers(project) == []


def test_apply_force_refuses_it_too(tmp_path, data, project):
    decisions = tmp_path / "decisions.csv"
    pd.DataFrame([("s0", "a", "remove", "")], columns=list(DECISION_COLUMNS)).to_csv(
        decisions, index=False)
    before = snapshot(project)
    result, words = run("apply", data, decisions, "--out", project, "--force",
                        "--id-column", "id")
    assert result.exit_code == 2, result.output
    assert "is not a labelaudit report" in words
    assert snapshot(project) == before and leftovers(project) == []


@pytest.mark.parametrize("manifest", [
    "{not json",
    "[]",
    json.dumps({"tool": "something-else", "files": ["thesis.tex"]}),
    json.dumps({"tool": "labelaudit", "files": "thesis.tex"}),
    json.dumps({"tool": "labelaudit", "files": ["..", "thesis.tex"]}),
    json.dumps({"tool": "labelaudit", "files": ["src/train.py"]}),
    json.dumps({"tool": "labelaudit", "files": ["/etc"]}),
    json.dumps({"tool": "labelaudit", "files": ["."]}),
    json.dumps({"tool": "labelaudit", "files": [None]}),
], ids=["not-json", "a-list", "another-tool", "a-string", "dot-dot", "a-path", "absolute",
        "dot", "null"])
def test_a_damaged_or_forged_manifest_proves_nothing(tmp_path, data, project, manifest):
    (project / MANIFEST).write_text(manifest)
    before = snapshot(project)
    with pytest.raises(UsageError, match="manifest"):
        check_out(project, inputs=[data])
    with pytest.raises(UsageError, match="manifest"):
        with staged(project) as folder:
            (folder / "summary.json").write_text("{}")
    assert snapshot(project) == before and leftovers(project) == []


def test_only_the_entries_the_manifest_lists_are_replaced(tmp_path, project):
    (project / "old.csv").write_text("stale\n")
    write_manifest(project, ["summary.json", "old.csv"])
    with staged(project) as folder:
        (folder / "summary.json").write_text('{"new": true}\n')
    assert (project / "summary.json").read_text() == '{"new": true}\n'
    assert not (project / "old.csv").exists()  # ours, and not written again: gone
    assert (project / "thesis.tex").read_text() == "t\n"
    assert (project / "src" / "train.py").read_text() == "c\n"
    assert json.loads((project / MANIFEST).read_text())["files"] == ["summary.json"]


def test_a_file_of_yours_the_new_report_would_overwrite_is_refused(tmp_path, data, no_training):
    out = tmp_path / "fixed"  # what `labelaudit apply` wrote, and a report.html of your own
    out.mkdir()
    (out / "changes.csv").write_text("id\n")
    (out / "report.html").write_text("my own page\n")
    write_manifest(out, ["changes.csv"])
    before = snapshot(out)
    result, words = run("scan", data, "--out", out, *QUICK)
    assert result.exit_code == 2, result.output
    assert "report.html" in words and "labelaudit did not write" in words
    assert snapshot(out) == before
    # the library refuses it at the last moment too, and leaves both sides whole
    with pytest.raises(UsageError, match="report.html"):
        with staged(out) as folder:
            (folder / "report.html").write_text("new report\n")
    assert snapshot(out) == before and leftovers(out) == []


KILL_WHEN = {  # a real process dies (kill -9) in publish() right after this rename
    "while-carrying-over": "self.name == 'notes.txt'",
    "between-the-renames": f"target.name.startswith({ASIDE.format(name='proj', pid='')!r})",
}


def kill_while_publishing(folder: Path, moment: str) -> None:
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from labelaudit.outputs import staged\n"
        "rename = Path.rename\n"
        "def dying(self, target):\n"
        "    done = rename(self, target)\n"
        f"    if {KILL_WHEN[moment]}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return done\n"
        "Path.rename = dying\n"
        "with staged(sys.argv[1]) as folder:\n"
        "    (folder / 'summary.json').write_text('{\"new\": true}')\n"), str(folder)],
        capture_output=True, text=True)
    assert killed.returncode == -9, killed.stderr


@pytest.mark.parametrize("moment", list(KILL_WHEN))
def test_a_run_killed_while_publishing_loses_none_of_your_files(tmp_path, project, moment):
    write_manifest(project, ["summary.json"])
    (project / "notes.txt").write_text("mine\n")
    before = snapshot(project)
    kill_while_publishing(project, moment)
    assert not (project / "notes.txt").exists()  # it was in the dead run's staging folder
    recover(project)
    assert snapshot(project) == before and leftovers(project) == []


def test_the_next_scan_puts_back_what_a_killed_one_left_aside(tmp_path, data, project):
    write_manifest(project, ["summary.json"])
    (project / "notes.txt").write_text("mine\n")
    (project / "cache").mkdir()  # the default cache, carried over like your files
    kill_while_publishing(project, "between-the-renames")
    assert not project.exists()
    result, _ = run("scan", data, "--out", project, *QUICK)
    assert result.exit_code == 0, result.output
    assert (project / "notes.txt").read_text() == "mine\n"
    assert (project / "thesis.tex").read_text() == "t\n" and leftovers(project) == []
    assert json.loads((project / "summary.json").read_text())["dataset"]["n_samples"] == 30


# -- 2. the cache never writes into the dataset --------------------------------------------------


@pytest.mark.parametrize("where", ["inside-the-folder", "the-folder", "the-tables-folder",
                                   "around-the-dataset"])
def test_a_cache_in_the_dataset_is_refused(tmp_path, data, no_training, where):
    images = image_folder(tmp_path / "imgs")
    dataset, cache = {
        "inside-the-folder": (images, images / "cache"),
        "the-folder": (images, images),
        "the-tables-folder": (data, data.parent),
        "around-the-dataset": (images, tmp_path),
    }[where]
    before = snapshot(dataset.parent)
    result, words = run("scan", dataset, "--out", tmp_path / "report", "--cache", cache, *QUICK)
    assert result.exit_code == 2, result.output
    assert f"--cache {cache}" in words and "dataset" in words
    assert "--cache ./labelaudit-cache" in words
    assert snapshot(dataset.parent) == before and not (tmp_path / "report").exists()


def test_check_cache_accepts_a_new_or_own_folder_outside_the_dataset(tmp_path, data):
    check_cache(tmp_path / "new" / "cache", inputs=[data])
    (tmp_path / "mine").mkdir()
    check_cache(tmp_path / "mine", inputs=[data])


# -- 3. an --out or --cache that cannot be written is refused before any work --------------------


def test_an_out_under_a_file_is_refused_before_any_work(tmp_path, data, no_training):
    (tmp_path / "notes.txt").write_text("not a folder\n")
    result, words = run("scan", data, "--out", tmp_path / "notes.txt" / "report", *QUICK)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'notes.txt'} is a file, not a folder" in words
    assert "choose another --out" in words
    assert (tmp_path / "notes.txt").read_text() == "not a folder\n"


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_a_cache_that_is_a_file_is_refused_before_any_work(tmp_path, data, no_training, where):
    (tmp_path / "cache.bin").write_bytes(b"\x00")
    cache = tmp_path / "cache.bin" if where == "a-file" else tmp_path / "cache.bin" / "folds"
    result, words = run("scan", data, "--out", tmp_path / "report", "--cache", cache, *QUICK)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'cache.bin'} is a file, not a folder" in words
    assert "--no-cache" in words and "another --cache" in words
    assert (tmp_path / "cache.bin").read_bytes() == b"\x00" and not (tmp_path / "report").exists()


def test_apply_refuses_an_out_under_a_file(tmp_path, data):
    (tmp_path / "notes.txt").write_text("not a folder\n")
    decisions = tmp_path / "decisions.csv"
    pd.DataFrame([("s0", "a", "remove", "")], columns=list(DECISION_COLUMNS)).to_csv(
        decisions, index=False)
    result, words = run("apply", data, decisions, "--out", tmp_path / "notes.txt" / "fixed",
                        "--id-column", "id")
    assert result.exit_code == 2, result.output
    assert "is a file, not a folder" in words and "Traceback" not in result.output


@pytest.mark.parametrize("what", ["out", "out-parent", "cache"])
def test_a_read_only_out_or_cache_is_refused_before_any_work(tmp_path, data, what):
    """Permission bits, enforced on root too (see _without_override)."""
    probe = tmp_path / "probe"
    probe.write_text("unreadable")
    probe.chmod(0o000)
    locked = tmp_path / "locked"
    locked.mkdir()
    out, cache = {"out": (locked, None), "out-parent": (locked / "report", None),
                  "cache": (tmp_path / "report", locked)}[what]
    extra = ["--cache", cache] if cache else []
    locked.chmod(0o555)
    try:
        ran = _without_override(probe, "scan", data, "--out", out, *extra, *QUICK)
    finally:
        locked.chmod(0o755)
    if ran is None:
        pytest.skip(NO_DENIAL)
    code, output = ran
    words = " ".join(output.split())
    assert code == 2, output
    assert f"{locked} is not writable" in words and "chmod u+w" in words
    assert "Traceback" not in output
    assert sorted(p.name for p in locked.iterdir()) == []
    assert not (tmp_path / "report").exists()


# -- 4. a cache is trusted data: only this user's -----------------------------------------------


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving a folder away needs root")


@needs_root
@pytest.mark.parametrize("which", ["--cache", "OUT/cache"])
def test_a_cache_owned_by_someone_else_is_refused(tmp_path, data, no_training, which):
    cache = tmp_path / "theirs" if which == "--cache" else tmp_path / "report" / "cache"
    cache.mkdir(parents=True)
    os.chown(cache, SOMEONE_ELSE, SOMEONE_ELSE)
    extra = ["--cache", cache] if which == "--cache" else []
    result, words = run("scan", data, "--out", tmp_path / "report", *extra, *QUICK)
    assert result.exit_code == 2, result.output
    assert f"the cache folder {cache} belongs to another user (uid {SOMEONE_ELSE})" in words
    assert "--no-cache" in words and "another --cache" in words
    assert list(cache.iterdir()) == []


@needs_root
def test_no_cache_gets_past_a_foreign_cache(tmp_path, data):
    cache = tmp_path / "report" / "cache"
    cache.mkdir(parents=True)
    os.chown(cache, SOMEONE_ELSE, SOMEONE_ELSE)
    result, _ = run("scan", data, "--out", tmp_path / "report", "--no-cache", *QUICK)
    assert result.exit_code == 0, result.output
    assert list(cache.iterdir()) == []


@needs_root
def test_the_fold_cache_refuses_an_entry_owned_by_someone_else(tmp_path):
    cache = FoldCache(tmp_path, "key")
    cache.put("fold1", {"probs": [0.5, 0.5]})
    assert cache.get("fold1") == {"probs": [0.5, 0.5]}
    os.chown(tmp_path / "key" / "fold1.joblib", SOMEONE_ELSE, SOMEONE_ELSE)
    with pytest.raises(UsageError, match="belongs to another user"):
        cache.get("fold1")
