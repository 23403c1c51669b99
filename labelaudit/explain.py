"""Why a sample was flagged, in a reviewer's terms, for the rows report.html embeds.

The pooled probabilities' top classes, the checks (ensemble members) named in plain words, and
a comparison with the given and the suggested class: the nearest images of each, each class's
median of a table's columns, or the words of a text that weigh most for each class. Numpy in,
plain lists out; scikit-learn is imported inside the functions that need it.
"""

from __future__ import annotations

import numpy as np

# The ensemble's members (train.ENSEMBLE) as a reviewer would name them.
MEMBER_WORDS = {
    "cnn": "the network",
    "mlp": "the network",
    "knn": "neighbours in the raw data",
    "knn_embedding": "neighbours in the network's view",
    "logreg": "a linear model",
    "naive_bayes": "naive Bayes",
    "dynamics": "the training history",
    "pred_probs": "your model",
    "embeddings_knn": "neighbours among the embeddings",
    "embeddings_logreg": "a linear model on the embeddings",
}
# A text's words are weighed by naive Bayes on at most this many texts (a seeded subsample).
MAX_WORD_TEXTS = 20_000
# A word weighs for a class when it is at least twice as likely there (common words are not).
MIN_WEIGHT = float(np.log(2))


def top_classes(pred_probs: np.ndarray, *, k: int = 3) -> list[list]:
    """Each row's `k` most probable classes as ``[class_index, probability]`` pairs, best first.

    >>> top_classes(np.array([[0.1, 0.7, 0.2]]), k=2)
    [[[1, 0.7], [2, 0.2]]]
    """
    probs = np.asarray(pred_probs, dtype=float)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[[int(c), round(float(p[c]), 3)] for c in best] for p, best in zip(probs, order,
                                                                             strict=True)]


def class_neighbours(X: np.ndarray, labels: np.ndarray, queries: np.ndarray,
                     wanted: np.ndarray, *, trusted: np.ndarray | None = None,
                     n_neighbors: int = 3) -> np.ndarray:
    """For each query row, its `n_neighbors` nearest rows labelled `wanted[i]` (itself excluded).

    Only `trusted` rows are candidates (e.g. the unflagged ones: what a class looks like), unless
    a class has none. -1 pads a class with too few rows. `X` is indexed by row, so it may be the
    raw image array; each class is flattened to float32 only when it is searched.

    >>> X = np.array([[0.0], [1.0], [5.0], [6.0], [9.0]])
    >>> class_neighbours(X, np.array([0, 0, 1, 1, 1]), np.array([0, 4]), np.array([1, 0]),
    ...                  n_neighbors=2).tolist()
    [[2, 3], [1, 0]]
    """
    from sklearn.neighbors import NearestNeighbors

    labels, queries, wanted = np.asarray(labels), np.asarray(queries), np.asarray(wanted)
    found = np.full((len(queries), n_neighbors), -1, dtype=np.int64)
    for c in np.unique(wanted):
        pool = np.flatnonzero(labels == c)
        if trusted is not None and trusted[pool].any():
            pool = pool[trusted[pool]]
        asked = np.flatnonzero(wanted == c)
        if not len(pool):
            continue
        search = NearestNeighbors(n_neighbors=min(n_neighbors + 1, len(pool)))
        search.fit(_flat(X, pool))
        hits = pool[search.kneighbors(_flat(X, queries[asked]), return_distance=False)]
        for row, near in zip(asked, hits, strict=True):
            near = near[near != queries[row]][:n_neighbors]
            found[row, :len(near)] = near
    return found


def _flat(X, rows) -> np.ndarray:
    part = np.asarray(X[rows])
    return part.reshape(len(rows), -1).astype(np.float32)


def class_centres(frame, labels: np.ndarray, n_classes: int, *,
                  trusted: np.ndarray | None = None) -> tuple[list[list], np.ndarray]:
    """Each class's median of every numeric column (mode of the others), and each column's scale.

    The scale is the interquartile range (the standard deviation where that is 0, else 1), so a
    difference reads the same on every column. Untrusted rows are left out where a class has
    trusted ones.

    >>> import pandas as pd
    >>> frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 10.0], "c": ["a", "a", "b", "b"]})
    >>> centres, scale = class_centres(frame, np.array([0, 0, 1, 1]), 2)
    >>> centres, scale.tolist()
    ([[1.5, 'a'], [6.5, 'b']], [3.0, 1.0])
    """
    import pandas as pd

    labels = np.asarray(labels)
    keep = np.ones(len(labels), bool) if trusted is None else np.asarray(trusted, bool)
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    centres = []
    for c in range(n_classes):
        rows = np.flatnonzero((labels == c) & keep)
        if not len(rows):
            rows = np.flatnonzero(labels == c)
        part = frame.iloc[rows]
        centres.append([_centre(part[col], is_num) for col, is_num in
                        zip(frame.columns, numeric, strict=True)])
    scale = np.ones(len(frame.columns))
    for j, col in enumerate(frame.columns):
        if numeric[j]:
            values = frame[col].to_numpy(dtype=float)
            spread = np.subtract(*np.nanpercentile(values, [75, 25])) if len(values) else 0.0
            if not spread > 0:
                spread = np.nanstd(values) if len(values) else 0.0
            scale[j] = spread if spread > 0 else 1.0
    return centres, scale


def _centre(values, numeric: bool):
    values = values.dropna()
    if not len(values):
        return None
    if numeric:
        return float(np.median(values.to_numpy(dtype=float)))
    return values.astype(str).mode().iloc[0]


def column_contrast(row: list, given: list, suggested: list, scale: np.ndarray) -> np.ndarray:
    """How much more one sample differs from its given class than from the suggested one, per
    column: scaled distances to the numeric centres, a mismatch of the mode counting 1.

    Positive: the column speaks for the suggested class.

    >>> column_contrast([9.0, "b"], [1.0, "a"], [8.0, "b"], np.array([2.0, 1.0])).tolist()
    [3.5, 1.0]
    """
    out = np.zeros(len(row))
    for j, (x, g, s) in enumerate(zip(row, given, suggested, strict=True)):
        if x is None or g is None or s is None or _is_nan(x):
            out[j] = np.nan
        elif isinstance(g, float) and not isinstance(x, str):
            out[j] = (abs(float(x) - g) - abs(float(x) - s)) / scale[j]
        else:
            out[j] = float(str(x) != str(g)) - float(str(x) != str(s))
    return out


def _is_nan(x) -> bool:
    return isinstance(x, float) and x != x


def word_evidence(texts, labels: np.ndarray, n_classes: int, queries: np.ndarray,
                  given: np.ndarray, suggested: np.ndarray, *, top: int = 5,
                  random_state: int = 0) -> list[list[list[str]]]:
    """For each query text, the words in it that weigh most for its given and its suggested class.

    Naive Bayes (word counts, scikit-learn's default tokens, lower-cased) learns each class's word
    probabilities; a word weighs for the given class by how much likelier it is there than in the
    suggested class, and the other way round.

    >>> texts = ["rocket moon orbit", "rocket launch rocket", "bake flour oven", "flour sugar",
    ...          "rocket oven"]
    >>> word_evidence(texts, np.array([0, 0, 1, 1, 1]), 2, np.array([4]), np.array([1]),
    ...               np.array([0]))
    [[['oven'], ['rocket']]]
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB

    texts = np.asarray(texts, dtype=object)
    labels = np.asarray(labels)
    fit_rows = np.arange(len(texts))
    if len(texts) > MAX_WORD_TEXTS:
        rng = np.random.default_rng(random_state)
        fit_rows = np.sort(rng.choice(len(texts), MAX_WORD_TEXTS, replace=False))
    vectorizer = CountVectorizer(max_features=50_000)
    try:
        counts = vectorizer.fit_transform(texts[fit_rows].astype(str))
    except ValueError:  # no words at all
        return [[[], []] for _ in queries]
    nb = MultinomialNB().fit(counts, labels[fit_rows])
    log_prob = np.full((n_classes, counts.shape[1]), -np.log(counts.shape[1]))
    log_prob[nb.classes_] = nb.feature_log_prob_
    words = vectorizer.get_feature_names_out()
    asked = vectorizer.transform(texts[np.asarray(queries)].astype(str)).tocsr()
    out = []
    for i, (g, s) in enumerate(zip(given, suggested, strict=True)):
        present = asked.indices[asked.indptr[i]:asked.indptr[i + 1]]
        weight = log_prob[g, present] - log_prob[s, present]
        order = np.argsort(-weight, kind="stable")
        for_given = [str(words[present[j]]) for j in order[:top] if weight[j] > MIN_WEIGHT]
        for_suggested = [str(words[present[j]]) for j in order[::-1][:top]
                         if weight[j] < -MIN_WEIGHT]
        out.append([for_given, for_suggested])
    return out
