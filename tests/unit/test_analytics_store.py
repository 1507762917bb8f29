"""Run summaries and the SQLite store: schema migrations, round trips, run references."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from aiclient.analytics.records import ERROR, OK, IterationRecord, RunInfo
from aiclient.analytics.stats import IterationStats
from aiclient.analytics.store import MIGRATIONS, SCHEMA_VERSION, Store
from aiclient.analytics.summary import COST_NA_OLLAMA, cost_meaningful, summarize
from aicommon.errors import AiError, ExitCode
from tests.unit.test_analytics_parser import (
    HAIKU,
    SONNET,
    assistant,
    model_usage,
    ndjson,
    parse_bytes,
    result,
    tool_result,
    tool_use,
    usage,
)


def stats(tools: list[str], *, in_tok: int, cache_read: int, out: int, cost: float,
          model: str = SONNET, error: bool = False, api_ms: int = 8000) -> IterationStats:
    events = []
    for i, name in enumerate(tools):
        events.append(assistant(f"m{i}", tool_use(f"t{i}", name), usage(in_tok, 0, 0, 1),
                                model=model))
        events.append(tool_result(f"t{i}", is_error=error and i == 0))
    events.append(result(is_error=error, subtype="error_max_turns" if error else "success",
                         total_cost_usd=cost, duration_api_ms=api_ms, num_turns=len(tools),
                         modelUsage={model: model_usage(in_tok, out, cache_read, 0, cost)}))
    return parse_bytes(ndjson(events))


def record(n: int, st: IterationStats, wall: float | None, status: str = OK) -> IterationRecord:
    return IterationRecord(n=n, started_at="2025-01-01T00:00:00Z", status=status,
                           raw_file=f"iteration-{n}.ndjson", stats=st, wall_s=wall)


def info(backend: str = "cloud", run_id: str = "r1", created: str = "2025-01-01T00:00:00Z"
         ) -> RunInfo:
    return RunInfo(id=run_id, created_at=created, backend=backend, directory="/runs/" + run_id,
                   iterations_planned=2, model=None if backend == "cloud" else "qwen3-coder")


def test_summary_totals_rates_and_cache_formula() -> None:
    recs = [record(1, stats(["Read", "Edit"], in_tok=100, cache_read=300, out=50, cost=0.1),
                   10.0),
            record(2, stats(["Grep"], in_tok=40, cache_read=60, out=10, cost=0.05, error=True),
                   20.0, ERROR)]
    s = summarize(info(), recs)
    t, r = s["totals"], s["rates"]
    assert t["iterations"] == 2 and t["iterations_ok"] == 1 and t["iterations_failed"] == 1
    assert t["tokens"] == {"input": 140, "cache_creation": 0, "cache_read": 360, "output": 60}
    assert t["cache_hit_rate"] == pytest.approx(360 / (140 + 0 + 360))
    assert t["cost_usd"] == pytest.approx(0.15) and t["cost_note"] is None
    assert t["tools"] == {"Edit": 1, "Grep": 1, "Read": 1}
    assert (t["shallow_ops"], t["deep_ops"]) == (2, 1)
    assert t["tool_errors"] == 1 and t["tool_results"] == 3
    assert r["tool_error_rate"] == pytest.approx(1 / 3)
    assert r["wall_s_mean"] == pytest.approx(15.0) and t["wall_s"] == pytest.approx(30.0)
    assert r["deep_share"] == pytest.approx(1 / 3)
    assert r["success_rate"] == pytest.approx(0.5)
    assert r["output_tokens_per_api_s"] == pytest.approx(60 / 16)
    assert [it["status"] for it in s["iterations"]] == ["ok", "error"]


def test_cost_is_na_for_ollama_and_for_non_anthropic_models() -> None:
    st = stats(["Read"], in_tok=10, cache_read=0, out=5, cost=0.3, model="qwen3-coder:30b")
    s = summarize(info("ollama"), [record(1, st, 5.0)])
    assert s["totals"]["cost_usd"] is None and s["totals"]["cost_note"] == COST_NA_OLLAMA
    assert s["iterations"][0]["cost_usd"] is None
    assert cost_meaningful("cloud", ["qwen3-coder:30b"])[0] is False
    assert cost_meaningful("cloud", [SONNET, HAIKU]) == (True, None)
    assert s["totals"]["cache_reported"] is False


def test_fresh_database_has_the_current_schema(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        version = store.conn.execute("PRAGMA user_version").fetchone()[0]
    assert version == SCHEMA_VERSION == len(MIGRATIONS)
    assert (tmp_path / "runs").is_dir()


def test_a_version_1_database_is_migrated_in_place(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "analytics.db")
    conn.executescript(MIGRATIONS[0] + "; PRAGMA user_version = 1;")
    conn.execute("INSERT INTO runs (id, created_at, status, source, backend,"
                 " iterations_planned, directory) VALUES ('old', '2024-01-01T00:00:00Z',"
                 " 'complete', 'run', 'cloud', 1, '/x')")
    conn.commit()
    conn.close()
    with Store.open(tmp_path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        runs = store.list_runs()
    assert [(i.id, i.label) for i, _ in runs] == [("old", "")]


def test_a_newer_database_is_refused(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "analytics.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(AiError) as exc, Store.open(tmp_path):
        pass
    assert exc.value.exit_code == ExitCode.CONFIG and "upgrade ai-client" in exc.value.one_line()


def test_a_corrupt_database_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "analytics.db").write_bytes(b"this is not a database" * 100)
    with pytest.raises(AiError) as exc, Store.open(tmp_path):
        pass
    assert "unusable" in exc.value.message and exc.value.hint


def test_runs_round_trip_and_resolve(tmp_path: Path) -> None:
    st = stats(["Read"], in_tok=10, cache_read=5, out=3, cost=0.01)
    with Store.open(tmp_path) as store:
        for run_id, created in (("20250101-000000-cloud", "2025-01-01T00:00:00Z"),
                                ("20250102-000000-cloud", "2025-01-02T00:00:00Z"),
                                ("20250102-000000-ollama", "2025-01-02T00:00:01Z")):
            i = info(run_id=run_id, created=created)
            i.label = "baseline"
            store.save_run(i, summarize(i, []))
            store.save_iteration(run_id, record(1, st, 3.5))
        assert store.resolve("last") == "20250102-000000-ollama"
        assert store.resolve("20250101") == "20250101-000000-cloud"
        with pytest.raises(AiError, match="matches 2 runs"):
            store.resolve("20250102")
        with pytest.raises(AiError, match="no run"):
            store.resolve("nope")
        with pytest.raises(AiError, match="no run"):
            store.resolve("2025%")  # LIKE wildcards are literal
        loaded_info, records = store.load("20250101")
        assert loaded_info.label == "baseline" and loaded_info.backend == "cloud"
        assert len(records) == 1 and records[0].stats == st and records[0].wall_s == 3.5
        listed = store.list_runs(limit=2)
        assert [i.id for i, _ in listed] == ["20250102-000000-ollama", "20250102-000000-cloud"]
        assert json.dumps(listed[0][1])  # the stored summary is JSON


def test_new_run_dirs_never_collide(tmp_path: Path) -> None:
    with Store.open(tmp_path) as store:
        first = store.new_run_dir("20250101-000000-cloud")
        second = store.new_run_dir("20250101-000000-cloud")
    assert first[0] == "20250101-000000-cloud" and second[0] == "20250101-000000-cloud-2"
    assert first[1].is_dir() and second[1].is_dir()
