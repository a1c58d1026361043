import pytest

from earful.serving import config
from earful.serving.config import ConfigError, ServeConfig


@pytest.mark.parametrize("cores, workers, threads", [(1, 1, 1), (2, 2, 1), (16, 2, 8)])
def test_workers_and_threads_split_the_cores(monkeypatch, cores, workers, threads):
    monkeypatch.setattr(config.os, "cpu_count", lambda: cores)
    for name in ("EARFUL_WORKERS", "EARFUL_THREADS"):
        monkeypatch.delenv(name, raising=False)
    c = ServeConfig.from_env()
    assert (c.workers, c.threads) == (workers, threads)


def test_one_worker_gets_every_core_unless_told(monkeypatch):
    monkeypatch.setattr(config.os, "cpu_count", lambda: 2)
    monkeypatch.setenv("EARFUL_WORKERS", "1")
    monkeypatch.delenv("EARFUL_THREADS", raising=False)
    assert ServeConfig.from_env().threads == 2
    monkeypatch.setenv("EARFUL_THREADS", "1")
    assert ServeConfig.from_env().threads == 1


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("EARFUL_WORKERS", "two", "not an integer"),
        ("EARFUL_THREADS", "0", "at least 1"),
        ("EARFUL_VARIANT", "fp16", "use int8 or fp32"),
    ],
)
def test_bad_settings_are_named(monkeypatch, name, value, message):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        ServeConfig.from_env()


def test_classify_tracing_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv("EARFUL_TRACE_CLASSIFY", raising=False)
    assert ServeConfig.from_env().trace_classify is False
    monkeypatch.setenv("EARFUL_TRACE_CLASSIFY", "1")
    assert ServeConfig.from_env().trace_classify is True
    monkeypatch.setenv("EARFUL_TRACE_CLASSIFY", "maybe")
    with pytest.raises(ConfigError, match="EARFUL_TRACE_CLASSIFY='maybe': use 1 or 0"):
        ServeConfig.from_env()


def test_run_overhead_is_measured_unless_given(monkeypatch):
    monkeypatch.delenv("EARFUL_RUN_OVERHEAD_TOKENS", raising=False)
    assert ServeConfig.from_env().run_overhead_tokens == 0
    monkeypatch.setenv("EARFUL_RUN_OVERHEAD_TOKENS", "12")
    assert ServeConfig.from_env().run_overhead_tokens == 12
    monkeypatch.setenv("EARFUL_RUN_OVERHEAD_TOKENS", "-1")
    with pytest.raises(ConfigError, match="EARFUL_RUN_OVERHEAD_TOKENS=-1 must be at least 0"):
        ServeConfig.from_env()
