"""Runs in SQLite (stdlib sqlite3) next to their raw NDJSON files.

Layout under the client's state dir: analytics/analytics.db and analytics/runs/<run id>/
(iteration-N.ndjson, iteration-N.stderr, prompt.txt, summary.json). The schema version is
SQLite's `user_version`; MIGRATIONS[i] takes a database from version i to i + 1, each in one
transaction, so a database written by any earlier ai-client opens (and upgrades) in place.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiclient.analytics.records import IterationRecord, RunInfo
from aiclient.analytics.stats import IterationStats
from aicommon.errors import AiError, ExitCode

MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their iterations
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        source TEXT NOT NULL,
        backend TEXT NOT NULL,
        base_url TEXT,
        model TEXT,
        claude_version TEXT,
        iterations_planned INTEGER NOT NULL,
        prompt_sha256 TEXT,
        goal TEXT,
        directory TEXT NOT NULL,
        argv_json TEXT NOT NULL DEFAULT '[]',
        summary_json TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE iterations (
        run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
        n INTEGER NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,
        exit_code INTEGER,
        wall_s REAL,
        raw_file TEXT NOT NULL,
        error TEXT,
        stats_json TEXT NOT NULL,
        PRIMARY KEY (run_id, n)
    );
    """,
    # 2: free-text labels for runs (`--label`), and listing by date without a scan
    """
    ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
    ALTER TABLE iterations ADD COLUMN push TEXT;
    CREATE INDEX runs_by_date ON runs (created_at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def analytics_dir() -> Path:
    from aicommon.paths import client_paths

    return client_paths().state_dir / "analytics"


def _db_error(path: Path, exc: sqlite3.Error) -> AiError:
    return AiError(f"analytics database {path} is unusable: {exc}",
                   "move it aside; runs' raw files stay in the runs/ directory and can be "
                   "re-imported with `ai-client analytics import`", code="analytics.db")


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the schema up to SCHEMA_VERSION; returns the version found."""
    found = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if found > SCHEMA_VERSION:
        raise AiError(f"analytics database {path} has schema {found}; this ai-client knows up "
                      f"to {SCHEMA_VERSION}", "upgrade ai-client", code="analytics.db_newer",
                      exit_code=ExitCode.CONFIG)
    for version in range(found, SCHEMA_VERSION):
        statements = [s.strip() for s in MIGRATIONS[version].split(";") if s.strip()]
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except sqlite3.Error:
            conn.execute("ROLLBACK")
            raise
    return found


@dataclass
class Store:
    root: Path
    conn: sqlite3.Connection

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @classmethod
    @contextmanager
    def open(cls, root: Path | None = None) -> Iterator[Store]:
        base = root or analytics_dir()
        path = base / "analytics.db"
        try:
            (base / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AiError(f"cannot create {base / 'runs'}: {exc.strerror}",
                          "check the state directory is writable (`ai-client paths`)",
                          code="file.unwritable") from exc
        try:
            # autocommit mode: every statement commits unless inside an explicit BEGIN
            conn = sqlite3.connect(path, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise _db_error(path, exc) from exc
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            migrate(conn, path)
            yield cls(base, conn)
        except sqlite3.Error as exc:
            raise _db_error(path, exc) from exc
        finally:
            conn.close()

    # -- runs --------------------------------------------------------------------------------
    def new_run_dir(self, stem: str) -> tuple[str, Path]:
        """A fresh directory for a run; the id is its name (stem, then stem-2, stem-3 …)."""
        n = 1
        while True:
            run_id = stem if n == 1 else f"{stem}-{n}"
            path = self.runs_dir / run_id
            try:
                path.mkdir(mode=0o700)  # the logs hold code, prompts and tool output
            except FileExistsError:
                n += 1
                continue
            exists = self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone()
            if exists:
                n += 1
                continue
            return run_id, path

    def save_run(self, info: RunInfo, summary: dict[str, Any] | None = None) -> None:
        self.conn.execute(
            "INSERT INTO runs (id, created_at, finished_at, status, source, backend, base_url,"
            " model, claude_version, iterations_planned, prompt_sha256, goal, directory,"
            " argv_json, summary_json, label) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at,"
            " status = excluded.status, base_url = excluded.base_url, model = excluded.model,"
            " claude_version = excluded.claude_version, summary_json = excluded.summary_json,"
            " label = excluded.label",
            (info.id, info.created_at, info.finished_at, info.status, info.source, info.backend,
             info.base_url, info.model, info.claude_version, info.iterations_planned,
             info.prompt_sha256, info.goal, info.directory, json.dumps(info.argv),
             json.dumps(summary or {}), info.label))

    def save_iteration(self, run_id: str, rec: IterationRecord) -> None:
        self.conn.execute(
            "INSERT OR REPLACE INTO iterations (run_id, n, started_at, finished_at, status,"
            " exit_code, wall_s, raw_file, error, stats_json, push)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, rec.n, rec.started_at, rec.finished_at, rec.status, rec.exit_code,
             rec.wall_s, rec.raw_file, rec.error, json.dumps(rec.stats.as_dict()), rec.push))

    @staticmethod
    def _info(row: sqlite3.Row) -> RunInfo:
        return RunInfo(
            id=row["id"], created_at=row["created_at"], backend=row["backend"],
            directory=row["directory"], source=row["source"], status=row["status"],
            finished_at=row["finished_at"], base_url=row["base_url"], model=row["model"],
            claude_version=row["claude_version"], iterations_planned=row["iterations_planned"],
            prompt_sha256=row["prompt_sha256"], goal=row["goal"], label=row["label"],
            argv=json.loads(row["argv_json"] or "[]"))

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        cur = self.conn.execute(sql, args)
        cur.row_factory = sqlite3.Row
        return list(cur.fetchall())

    def list_runs(self, limit: int | None = None) -> list[tuple[RunInfo, dict[str, Any]]]:
        sql = "SELECT * FROM runs ORDER BY created_at DESC, id DESC"
        rows = self._rows(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
        return [(self._info(r), json.loads(r["summary_json"] or "{}")) for r in rows]

    def resolve(self, ref: str) -> str:
        """A run id from an exact id, a unique prefix, or `last`."""
        if ref in ("last", "latest"):
            row = self.conn.execute(
                "SELECT id FROM runs ORDER BY created_at DESC, id DESC LIMIT 1").fetchone()
            if row is None:
                raise AiError("there are no runs yet", "start one with `ai-client analytics run`",
                              code="analytics.no_runs")
            return str(row[0])
        if self.conn.execute("SELECT 1 FROM runs WHERE id = ?", (ref,)).fetchone():
            return ref
        escaped = ref.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        ids = [str(r[0]) for r in self.conn.execute(
            "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' ORDER BY id", (escaped + "%",))]
        if len(ids) == 1:
            return ids[0]
        if not ids:
            raise AiError(f"no run {ref!r}", "see `ai-client analytics list`",
                          code="analytics.no_such_run")
        raise AiError(f"{ref!r} matches {len(ids)} runs ({', '.join(ids[:3])}…)",
                      "give more of the run id", code="analytics.ambiguous_run")

    def load(self, ref: str) -> tuple[RunInfo, list[IterationRecord]]:
        run_id = self.resolve(ref)
        info = self._info(self._rows("SELECT * FROM runs WHERE id = ?", (run_id,))[0])
        records = [
            IterationRecord(n=r["n"], started_at=r["started_at"], status=r["status"],
                            raw_file=r["raw_file"],
                            stats=IterationStats.from_dict(json.loads(r["stats_json"])),
                            finished_at=r["finished_at"], exit_code=r["exit_code"],
                            wall_s=r["wall_s"], error=r["error"], push=r["push"])
            for r in self._rows("SELECT * FROM iterations WHERE run_id = ? ORDER BY n",
                                (run_id,))]
        return info, records
