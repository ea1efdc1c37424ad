"""One SQLite file per run or study: generations, judgments, metrics, stages.

Every generation and judgment has a natural key, so a rerun or a resumed run asks the store what exists and only
does the rest; each batch is committed as soon as it is produced, so a kill loses at most the batch in flight.
WAL mode lets a report read while a run writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  run_id TEXT PRIMARY KEY, kind TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
  started REAL NOT NULL, finished REAL
);
CREATE TABLE IF NOT EXISTS generations (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  model TEXT NOT NULL, benchmark TEXT NOT NULL, item_id TEXT NOT NULL, sample INTEGER NOT NULL,
  params TEXT NOT NULL, prompt TEXT NOT NULL, response TEXT NOT NULL,
  prompt_tokens INTEGER, completion_tokens INTEGER, finish_reason TEXT, seed INTEGER, backend TEXT,
  created REAL NOT NULL,
  UNIQUE (model, benchmark, item_id, sample, params)
);
CREATE TABLE IF NOT EXISTS judgments (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  generation_id INTEGER NOT NULL REFERENCES generations(id), judge TEXT NOT NULL, judge_version TEXT NOT NULL,
  label TEXT NOT NULL, refused INTEGER NOT NULL, harmful REAL, raw TEXT, created REAL NOT NULL,
  UNIQUE (generation_id, judge, judge_version)
);
CREATE TABLE IF NOT EXISTS grades (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  generation_id INTEGER NOT NULL REFERENCES generations(id), grader TEXT NOT NULL,
  value REAL NOT NULL, parsed TEXT, reason TEXT, created REAL NOT NULL, error INTEGER NOT NULL DEFAULT 0,
  UNIQUE (generation_id, grader)
);
CREATE TABLE IF NOT EXISTS metrics (
  run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL, created REAL NOT NULL,
  PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS stages (
  stage_id TEXT PRIMARY KEY, status TEXT NOT NULL, started REAL, finished REAL, artifacts TEXT, error TEXT
);
"""


@dataclass(frozen=True)
class GenerationRow:
    id: int
    model: str
    benchmark: str
    item_id: str
    sample: int
    params: str
    prompt: str
    response: str
    prompt_tokens: int | None
    completion_tokens: int | None
    finish_reason: str | None


class Store:
    """Thread-safe thin wrapper over sqlite3; every write commits before returning."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=60)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(SCHEMA)
        if "error" not in {r[1] for r in self._conn.execute("PRAGMA table_info(grades)")}:  # a store from before
            self._conn.execute("ALTER TABLE grades ADD COLUMN error INTEGER NOT NULL DEFAULT 0")
        self._conn.commit()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._conn
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise

    def query(self, sql: str, args: Iterable[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, tuple(args)))

    # runs and metrics -------------------------------------------------------------------------------------------
    def start_run(self, run_id: str, kind: str, config: dict[str, Any]) -> None:
        with self._tx() as c:
            c.execute(
                "INSERT INTO runs(run_id, kind, config, status, started) VALUES (?,?,?,?,?) "
                "ON CONFLICT(run_id) DO UPDATE SET status='running', config=excluded.config",
                (run_id, kind, json.dumps(config, default=str, sort_keys=True), "running", time.time()),
            )

    def finish_run(self, run_id: str, status: str = "done") -> None:
        with self._tx() as c:
            c.execute("UPDATE runs SET status=?, finished=? WHERE run_id=?", (status, time.time(), run_id))

    def log_metrics(self, run_id: str, step: int, metrics: dict[str, float]) -> None:
        now = time.time()
        rows = [(run_id, int(step), k, _as_float(v), now) for k, v in metrics.items() if _as_float(v) is not None]
        with self._tx() as c:
            c.executemany("INSERT OR REPLACE INTO metrics(run_id, step, name, value, created) VALUES (?,?,?,?,?)", rows)

    def metric_series(self, run_id: str) -> dict[str, list[tuple[int, float]]]:
        out: dict[str, list[tuple[int, float]]] = {}
        for r in self.query("SELECT step, name, value FROM metrics WHERE run_id=? ORDER BY step", (run_id,)):
            out.setdefault(r["name"], []).append((r["step"], r["value"]))
        return out

    # generations ------------------------------------------------------------------------------------------------
    def existing_generations(self, model: str, benchmark: str, params: str) -> dict[tuple[str, int], GenerationRow]:
        rows = self.query(
            "SELECT * FROM generations WHERE model=? AND benchmark=? AND params=?", (model, benchmark, params))
        return {(r["item_id"], r["sample"]): _gen_row(r) for r in rows}

    def add_generations(self, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT OR IGNORE INTO generations(model, benchmark, item_id, sample, params, prompt, response, "
                "prompt_tokens, completion_tokens, finish_reason, seed, backend, created) "
                "VALUES (:model,:benchmark,:item_id,:sample,:params,:prompt,:response,:prompt_tokens,"
                ":completion_tokens,:finish_reason,:seed,:backend,:created)",
                [{"seed": None, "backend": None, **r, "created": now} for r in rows],
            )

    # judgments --------------------------------------------------------------------------------------------------
    def existing_judgments(self, generation_ids: list[int], judge: str, version: str) -> dict[int, sqlite3.Row]:
        out: dict[int, sqlite3.Row] = {}
        for chunk in _chunks(generation_ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.query(
                f"SELECT * FROM judgments WHERE judge=? AND judge_version=? AND generation_id IN ({marks})",
                (judge, version, *chunk),
            ):
                out[r["generation_id"]] = r
        return out

    def add_judgments(self, rows: list[dict[str, Any]]) -> None:
        """Insert verdicts; a stored verdict is final, except one labelled "error", which a new verdict replaces."""
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO judgments(generation_id, judge, judge_version, label, refused, harmful, raw,"
                " created) VALUES (:generation_id,:judge,:judge_version,:label,:refused,:harmful,:raw,:created)"
                " ON CONFLICT(generation_id, judge, judge_version) DO UPDATE SET label=excluded.label,"
                " refused=excluded.refused, harmful=excluded.harmful, raw=excluded.raw, created=excluded.created"
                " WHERE judgments.label = 'error'",
                [{**r, "raw": json.dumps(r.get("raw"), default=str), "created": now} for r in rows],
            )

    # verifier grades (capability tasks) -------------------------------------------------------------------------
    def existing_grades(self, generation_ids: list[int], grader: str) -> dict[int, sqlite3.Row]:
        out: dict[int, sqlite3.Row] = {}
        for chunk in _chunks(generation_ids, 500):
            marks = ",".join("?" * len(chunk))
            for r in self.query(f"SELECT * FROM grades WHERE grader=? AND generation_id IN ({marks})",
                                (grader, *chunk)):
                out[r["generation_id"]] = r
        return out

    def add_grades(self, rows: list[dict[str, Any]]) -> None:
        """Insert grades. `error` (default 0) marks a grader failure, not a grade: it is kept for the record and
        replaced by the next attempt; a real grade is final."""
        now = time.time()
        with self._tx() as c:
            c.executemany(
                "INSERT INTO grades(generation_id, grader, value, parsed, reason, created, error) "
                "VALUES (:generation_id,:grader,:value,:parsed,:reason,:created,:error)"
                " ON CONFLICT(generation_id, grader) DO UPDATE SET value=excluded.value, parsed=excluded.parsed,"
                " reason=excluded.reason, created=excluded.created, error=excluded.error WHERE grades.error != 0",
                [{"error": 0, **r, "created": now} for r in rows],
            )

    # stages (the study runner's ledger) -------------------------------------------------------------------------
    def stage_status(self, stage_id: str) -> str | None:
        rows = self.query("SELECT status FROM stages WHERE stage_id=?", (stage_id,))
        return rows[0]["status"] if rows else None

    def stage_artifacts(self, stage_id: str) -> dict[str, Any]:
        rows = self.query("SELECT artifacts FROM stages WHERE stage_id=?", (stage_id,))
        return json.loads(rows[0]["artifacts"]) if rows and rows[0]["artifacts"] else {}

    def set_stage(self, stage_id: str, status: str, artifacts: dict[str, Any] | None = None,
                  error: str | None = None) -> None:
        now = time.time()
        with self._tx() as c:
            c.execute(
                "INSERT INTO stages(stage_id, status, started, finished, artifacts, error) VALUES (?,?,?,?,?,?) "
                "ON CONFLICT(stage_id) DO UPDATE SET status=excluded.status, "
                "finished=CASE WHEN excluded.status IN ('done','failed') THEN ? ELSE stages.finished END, "
                "started=CASE WHEN excluded.status='running' THEN ? ELSE stages.started END, "
                "artifacts=COALESCE(excluded.artifacts, stages.artifacts), error=excluded.error",
                (stage_id, status, now, now if status in ("done", "failed") else None,
                 json.dumps(artifacts, default=str) if artifacts is not None else None, error, now, now),
            )

    def stages(self) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM stages ORDER BY started")


def _as_float(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f


def _gen_row(r: sqlite3.Row) -> GenerationRow:
    return GenerationRow(
        id=r["id"], model=r["model"], benchmark=r["benchmark"], item_id=r["item_id"], sample=r["sample"],
        params=r["params"], prompt=r["prompt"], response=r["response"], prompt_tokens=r["prompt_tokens"],
        completion_tokens=r["completion_tokens"], finish_reason=r["finish_reason"],
    )


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
