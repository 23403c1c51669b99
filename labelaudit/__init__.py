"""labelaudit: watch the generalization gap; when it climbs, find and review mislabeled samples."""

__version__ = "0.1.0"

__all__ = ["GapMonitor", "diagnose", "load_dataset", "scan", "ScanSettings", "__version__"]


def __getattr__(name):
    # Lazy so that `import labelaudit` (and `labelaudit --help`) stays instant.
    if name in ("GapMonitor", "diagnose"):
        from . import gap

        return getattr(gap, name)
    if name == "load_dataset":
        from .data import load_dataset

        return load_dataset
    if name in ("scan", "ScanSettings"):
        from . import scan as _scan

        return getattr(_scan, name)
    raise AttributeError(f"module 'labelaudit' has no attribute {name!r}")
