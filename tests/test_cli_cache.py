"""Tests of ``pytest-llmeval cache``: run in-process through ``main``, plus one real script call."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pytest_llmeval.cache import ResponseCache, canonical_request, request_key
from pytest_llmeval.cli import main

DAY = 86400.0
NOW = 1_700_000_000.0


def record(directory: Path, ages_days: list[float], kind: str = "chat") -> None:
    """Store one entry per age (days before NOW)."""
    times = iter(NOW - age * DAY for age in ages_days)
    payload_key, payload = ("messages", [{"role": "user", "content": "hi"}]) if kind == "chat" else ("input", ["hi"])
    with ResponseCache(directory, clock=lambda: next(times)) as cache:
        for sample in range(len(ages_days)):
            request = canonical_request(kind, "openai/gpt-4o-mini", None, payload_key, payload, {}, sample=sample)
            cache.set(request_key(request), request, {"text": "hello"})


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "cache"
    record(directory, [0, 1, 2])
    record(directory, [0], kind="embedding")
    return directory


def test_stats(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "stats", "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("4 entries, ")
    assert out[0].endswith(f"KiB (chat: 3, embedding: 1) in {cache_dir}")
    assert out[1] == "  models: openai/gpt-4o-mini: 4"
    assert out[2] == "  recorded 2023-11-12 22:13 UTC .. 2023-11-14 22:13 UTC"


def test_cache_dir_before_the_action_and_default(
    cache_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["cache", "--cache-dir", str(cache_dir), "stats"]) == 0
    assert capsys.readouterr().out.startswith("4 entries")
    monkeypatch.chdir(cache_dir.parent)
    shutil.copytree(cache_dir, cache_dir.parent / ".llmeval" / "cache")
    assert main(["cache", "stats"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith("in .llmeval/cache")


def test_missing_cache_is_reported_not_created(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nowhere"
    assert main(["cache", "stats", "--cache-dir", str(missing)]) == 0
    assert capsys.readouterr().out == f"no cache at {missing}; pass --cache-dir if it lives elsewhere\n"
    assert not missing.exists()
    assert main(["cache", "export", str(tmp_path / "out.jsonl"), "--cache-dir", str(missing)]) == 2
    assert f"no cache at {missing}; pass --cache-dir" in capsys.readouterr().err


def test_clear(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "--cache-dir", str(cache_dir)]) == 0
    assert capsys.readouterr().out == f"cleared 4 entries from {cache_dir}\n"
    with ResponseCache(cache_dir) as cache:
        assert len(cache) == 0


def test_prune(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Entries were recorded in 2023 (NOW), so all are older than 30 days today.
    assert main(["cache", "prune", "--older-than", "30d", "--cache-dir", str(cache_dir)]) == 0
    assert capsys.readouterr().out == f"pruned 4 entries older than 30d from {cache_dir} (0 entries left)\n"


def test_prune_keeps_recent_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with ResponseCache(tmp_path) as cache:  # the real clock: recorded now
        request = canonical_request("chat", "m", None, "messages", [], {})
        cache.set(request_key(request), request, {"text": "x"})
    assert main(["cache", "prune", "--older-than", "1h", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"pruned 0 entries older than 1h from {tmp_path} (1 entry left)\n"


def test_prune_bad_duration(cache_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "prune", "--older-than", "30 days", "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pytest-llmeval: --older-than: duration '30 days' is not understood")
    assert "30d, 12h, 90m, 45s" in err


def test_export_then_import(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "recordings.jsonl"
    assert main(["cache", "export", str(out), "--cache-dir", str(cache_dir)]) == 0
    assert capsys.readouterr().out == f"exported 4 entries from {cache_dir} to {out}\n"
    assert len(out.read_text().splitlines()) == 4
    fresh = tmp_path / "fresh"
    assert main(["cache", "import", str(out), "--cache-dir", str(fresh)]) == 0
    assert capsys.readouterr().out == f"imported 4 entries from {out} into {fresh}\n"
    again = tmp_path / "again.jsonl"
    assert main(["cache", "export", str(again), "--cache-dir", str(fresh)]) == 0
    assert again.read_bytes() == out.read_bytes()


def test_import_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": "x"}) + "\n")
    assert main(["cache", "import", str(bad), "--cache-dir", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err
    assert f"cache import: {bad}:1: expected an object with exactly" in err
    assert main(["cache", "import", str(tmp_path / "missing.jsonl"), "--cache-dir", str(tmp_path / "c")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_export_to_a_missing_folder(cache_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no" / "such" / "dir.jsonl"
    assert main(["cache", "export", str(target), "--cache-dir", str(cache_dir)]) == 2
    assert f"cannot write {target}" in capsys.readouterr().err


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["cache"]) == 2
    assert main(["cache", "prune"]) == 2
    assert "--older-than" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "cache" in capsys.readouterr().out


def test_installed_script(cache_dir: Path) -> None:
    script = shutil.which("pytest-llmeval")
    if script is None:
        pytest.skip("pytest-llmeval is not on PATH; run pip install -e .")
    done = subprocess.run([script, "cache", "stats", "--cache-dir", str(cache_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("4 entries, ")
    done = subprocess.run([script, "cache", "prune", "--older-than", "soon", "--cache-dir", str(cache_dir)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "duration 'soon'" in done.stderr
