"""The README's Python example runs as written (docs that cannot drift)."""

from __future__ import annotations

import re

from .conftest import ROOT


def test_gap_monitor_example_runs():
    import torch
    from sklearn.datasets import load_iris

    readme = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", readme, re.S).group(1)
    assert "GapMonitor" in code
    X, y = load_iris(return_X_y=True)
    X, y = torch.tensor(X, dtype=torch.float32), torch.tensor(y)
    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(X, y)
    train, val = torch.utils.data.random_split(data, [120, 30])
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
    namespace = {
        "model": model,
        "optimizer": torch.optim.Adam(model.parameters(), lr=0.01),
        "train_loader": torch.utils.data.DataLoader(train, batch_size=32),
        "val_loader": torch.utils.data.DataLoader(val, batch_size=32),
    }
    exec(code, namespace)
    verdict = namespace["verdict"]
    assert verdict.epochs == 30
    assert verdict.regime in {"converged", "over-parametrized", "steep-climb", "underfitting",
                              "too-little-evidence"}
    assert verdict.advice
