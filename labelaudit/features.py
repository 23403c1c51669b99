"""Turn a `Dataset` into the numeric matrix its model trains on.

The transforms here are unsupervised (scaling, one-hot encoding, TF-IDF), so fitting them on
all samples leaks no label information into the held-out folds.
"""

from __future__ import annotations

import numpy as np

from .data import Dataset

# TF-IDF vocabulary cap: enough for real corpora, small enough for a laptop's memory.
MAX_TEXT_FEATURES = 50_000
MAX_CATEGORIES = 50
# Above this magnitude a numeric column is rescaled (exactly) before standardising: squares of
# values near 1e154 overflow float64.
HUGE = 2.0**100


def make_features(ds: Dataset):
    """Return X for the dataset's model: float32 array, uint8 image array, or sparse TF-IDF.

    >>> from labelaudit.data import load_dataset
    >>> X = make_features(load_dataset("datasets/wine-noisy.csv"))
    >>> X.shape, X.dtype
    ((178, 13), dtype('float32'))
    """
    if ds.kind == "images":
        return ds.inputs
    if ds.kind == "text":
        return text_features(ds.inputs)
    return tabular_features(ds.inputs)


def text_features(texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    vectorizer = TfidfVectorizer(
        sublinear_tf=True,
        min_df=2 if n >= 50 else 1,
        max_df=0.95 if n >= 50 else 1.0,
        max_features=MAX_TEXT_FEATURES,
        dtype=np.float32,
    )
    try:
        return vectorizer.fit_transform(texts).tocsr()
    except ValueError:  # every text empty or only stop words
        from .errors import UsageError

        raise UsageError("the text column holds no words to learn from; check --text-column") \
            from None


def _huge(values: np.ndarray) -> bool:
    finite = np.abs(values[np.isfinite(values)])
    return bool(len(finite)) and finite.max() > HUGE


def _tame(values: np.ndarray) -> np.ndarray:
    """Divide a column of huge magnitudes by a power of two, so the scaler's squares cannot
    overflow. Standardising is blind to the factor and a power of two changes no digit, so the
    features are those the scaler would give if it could not overflow.

    >>> _tame(np.array([1e300, -2e300])).tolist()
    [0.37330544740128757, -0.7466108948025751]
    """
    finite = np.abs(values[np.isfinite(values)])
    return np.ldexp(values, -int(np.frexp(finite.max())[1]))


def tabular_features(frame):
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])
               and not pd.api.types.is_bool_dtype(frame[c])]
    categorical = [c for c in frame.columns if c not in numeric]
    frame = frame.copy()
    for c in categorical:
        frame[c] = frame[c].astype(object).where(frame[c].notna(), "<missing>").astype(str)
    for c in numeric:
        values = frame[c].to_numpy(dtype=np.float64, na_value=np.nan)
        if _huge(values):  # others stay exactly as they are, dtype included
            frame[c] = _tame(values)
    transformers = []
    if numeric:
        transformers.append(("num", make_pipeline(
            SimpleImputer(strategy="median", keep_empty_features=True), StandardScaler()), numeric))
    if categorical:
        transformers.append(("cat", OneHotEncoder(handle_unknown="ignore",
                                                  max_categories=MAX_CATEGORIES,
                                                  sparse_output=False), categorical))
    X = ColumnTransformer(transformers, sparse_threshold=0).fit_transform(frame)
    return np.nan_to_num(np.asarray(X, dtype=np.float32))
