"""`ai-client analytics import`: existing stream-json logs (the old scripts' iteration-N.json
files too) become a run, copied into its own run directory like a live run's logs."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiclient.analytics.parser import parse_file
from aiclient.analytics.records import (
    ERROR,
    IMPORTED,
    NO_RESULT,
    OK,
    IterationRecord,
    RunInfo,
)
from aiclient.analytics.stats import IterationStats
from aiclient.analytics.store import Store
from aiclient.analytics.summary import summarize
from aicommon.errors import AiError, ExitCode

_ITERATION_NAME = re.compile(r"iteration[-_]?(\d+)", re.IGNORECASE)


def ordered(files: Sequence[Path]) -> list[Path]:
    """iteration-N files in N order (iteration-10 after iteration-9); others as given."""
    numbers = [_ITERATION_NAME.search(f.name) for f in files]
    if all(numbers):
        return [f for _, f in sorted(zip((int(m.group(1)) for m in numbers if m), files,
                                         strict=True), key=lambda pair: pair[0])]
    return list(files)


def infer_backend(models: Sequence[str]) -> str:
    if not models:
        return "unknown"
    return "cloud" if all(m.startswith("claude") for m in models) else "ollama"


def _status(stats: IterationStats) -> tuple[str, str | None]:
    if not stats.has_result:
        return NO_RESULT, "the log has no result event"
    if stats.result_is_error:
        why = stats.result_errors[0] if stats.result_errors else ""
        return ERROR, f"result {stats.result_subtype or 'error'}" + (f": {why}" if why else "")
    return OK, None


def import_logs(files: Sequence[Path], backend: str | None = None, model: str | None = None,
                label: str = "", store_root: Path | None = None
                ) -> tuple[RunInfo, list[IterationRecord], dict[str, Any]]:
    if not files:
        raise AiError("no files to import", "name one or more stream-json logs", code="usage",
                      exit_code=ExitCode.USAGE)
    for f in files:
        if not f.is_file():
            raise AiError(f"{f} is not a readable file", "check the path",
                          code="analytics.no_such_file")
    files = ordered(files)
    with Store.open(store_root) as store:
        oldest = min(f.stat().st_mtime for f in files)
        run_id, run_dir = store.new_run_dir(time.strftime("%Y%m%d-%H%M%S") + "-import")
        records: list[IterationRecord] = []
        try:
            for n, src in enumerate(files, 1):
                raw = f"iteration-{n}.ndjson"
                try:
                    shutil.copyfile(src, run_dir / raw)
                except OSError as exc:
                    raise AiError(f"cannot copy {src}: {exc.strerror}",
                                  "check the file is readable and the state dir writable",
                                  code="file.unreadable") from exc
                stats = parse_file(run_dir / raw)
                status, error = _status(stats)
                stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(src.stat().st_mtime))
                records.append(IterationRecord(n=n, started_at=stamp, status=status,
                                               raw_file=raw, stats=stats, finished_at=stamp,
                                               error=error))
        except BaseException:
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        models = list(dict.fromkeys(m for r in records for m in r.stats.models))
        versions = [r.stats.claude_code_version for r in records if r.stats.claude_code_version]
        info = RunInfo(
            id=run_id, created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(oldest)),
            backend=backend or infer_backend(models), directory=str(run_dir), source="import",
            status=IMPORTED, finished_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            model=model or (models[0] if models else None),
            claude_version=versions[0] if versions else None,
            iterations_planned=len(files), label=label,
            argv=[str(f.resolve()) for f in files])
        summary = summarize(info, records)
        store.conn.execute("BEGIN")
        try:
            store.save_run(info, summary)
            for rec in records:
                store.save_iteration(run_id, rec)
            store.conn.execute("COMMIT")
        except BaseException:
            store.conn.execute("ROLLBACK")
            shutil.rmtree(run_dir, ignore_errors=True)
            raise
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n",
                                              encoding="utf-8")
    return info, records, summary
