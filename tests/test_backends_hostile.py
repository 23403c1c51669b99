"""Hostile settings: a malformed Dask scheduler address, seeds numpy cannot take.

Each is refused up front with exit 2 and a message, never a traceback (exit 1 is a tripped gate).
"""

from __future__ import annotations

import time

import pytest
from typer.testing import CliRunner

from labelaudit import backends, noise
from labelaudit.cli import app
from labelaudit.errors import UsageError

runner = CliRunner()
SEED_MAX = 2**32 - 1  # numpy's seed range is 0..2**32-1
FOLD = dict(train_index=[0], test_index=[1], fold=1)  # never trained: refused before


# --- Dask scheduler addresses ----------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "tcp://scheduler:8786", "scheduler:8786", "tls://10.0.0.5:8786", "127.0.0.1:1",
    "tcp://[::1]:8786", "[::1]:8786", "ws://dask.example.org:80", "ucx://node-1:13337",
    "inproc://10.0.0.5/4242/1",
])
def test_well_formed_scheduler_addresses_pass(address):
    assert backends.check_scheduler(address) == address


@pytest.mark.parametrize("address", [
    "bogus", "tcp://bogus", "bogus:", ":8786", "tcp://:8786", "scheduler:port",
    "scheduler:0", "scheduler:65536", "http://scheduler:8786", "tcp:/scheduler:8786",
    "tcp://scheduler:8786/path", "sched uler:8786", " ", "tcp://",
])
def test_malformed_scheduler_addresses_are_refused(address):
    with pytest.raises(UsageError, match=r"--scheduler .*tcp://scheduler:8786") as info:
        backends.check_scheduler(address)
    assert repr(address) in str(info.value)


def test_a_malformed_address_from_the_environment_names_the_variable(monkeypatch):
    monkeypatch.setenv(backends.SCHEDULER_ENV, "bogus")
    with pytest.raises(UsageError, match=backends.SCHEDULER_ENV):
        backends.check_scheduler(None)
    # --scheduler wins over the environment.
    assert backends.check_scheduler("tcp://h:1") == "tcp://h:1"


def test_no_scheduler_at_all_is_refused(monkeypatch):
    monkeypatch.delenv(backends.SCHEDULER_ENV, raising=False)
    with pytest.raises(UsageError, match="needs --scheduler"):
        backends.check_scheduler(None)


def test_a_bogus_address_is_refused_before_any_connection(monkeypatch):
    distributed = pytest.importorskip("distributed")
    monkeypatch.setattr(distributed, "Client", lambda *a, **k: pytest.fail("connected"))
    started = time.perf_counter()
    with pytest.raises(UsageError, match="'bogus'"):
        list(backends.execute(None, None, [FOLD], backend="dask", scheduler="bogus"))
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("error", [TimeoutError("timed out after 40 s."),
                                   OSError("Timed out trying to connect"),
                                   ConnectionRefusedError(111, "Connection refused")])
def test_connection_errors_become_a_usage_error(monkeypatch, error):
    distributed = pytest.importorskip("distributed")

    def refuse(*args, **kwargs):
        raise error

    monkeypatch.setattr(distributed, "Client", refuse)
    with pytest.raises(UsageError, match="cannot reach the Dask scheduler at tcp://h:8786"):
        list(backends.execute(None, None, [FOLD], backend="dask", scheduler="tcp://h:8786"))


@pytest.mark.parametrize("error", [TimeoutError("timed out"), OSError("Stream is closed")])
def test_losing_the_scheduler_while_scattering_is_a_usage_error(monkeypatch, error):
    distributed = pytest.importorskip("distributed")
    closed = []

    class Client:
        def __init__(self, *args, **kwargs):
            pass

        def scatter(self, *args, **kwargs):
            raise error

        def close(self):
            closed.append(True)

    monkeypatch.setattr(distributed, "Client", Client)
    with pytest.raises(UsageError, match="lost the Dask scheduler at tcp://h:8786"):
        list(backends.execute(None, None, [FOLD], backend="dask", scheduler="tcp://h:8786"))
    assert closed == [True]


def test_scan_with_a_bogus_scheduler_exits_2_fast(tmp_path, table_csv):
    started = time.perf_counter()
    result = runner.invoke(app, ["scan", str(table_csv), "--out", str(tmp_path / "r"),
                                 "--backend", "dask", "--scheduler", "bogus", "--audit",
                                 "always", "--epochs", "2", "--cv", "2", "-q", "--no-cache"])
    assert result.exit_code == 2, result.output
    assert "--scheduler" in result.stderr and "'bogus'" in result.stderr
    assert "Traceback" not in result.output
    assert time.perf_counter() - started < 30


# --- seeds -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, SEED_MAX])
def test_seeds_numpy_takes_pass(seed):
    assert noise.check_seed(seed) == seed


def test_check_seed_message():
    with pytest.raises(UsageError) as info:
        noise.check_seed(-1)
    assert str(info.value) == "--seed must be a whole number from 0 to 4294967295, not -1"


@pytest.mark.parametrize("seed", [-1, SEED_MAX + 1, 2**64, 1.5, True, "3", None])
def test_seeds_numpy_refuses_are_refused(seed):
    with pytest.raises(UsageError, match="--seed must be a whole number"):
        noise.check_seed(seed)


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_selftest_blames_the_seed_not_the_injection(table_csv, seed):
    result = runner.invoke(app, ["selftest", str(table_csv), "--seed", seed, "-q"])
    assert result.exit_code == 2, result.output
    assert "--seed" in result.stderr and seed in result.stderr
    assert "--inject" not in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_scan_refuses_a_seed_out_of_range(tmp_path, table_csv, seed):
    result = runner.invoke(app, ["scan", str(table_csv), "--out", str(tmp_path / "r"),
                                 "--seed", seed, "--epochs", "2", "--cv", "2", "-q"])
    assert result.exit_code == 2, result.output
    assert "--seed must be a whole number" in result.stderr
