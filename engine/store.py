"""The run store: one SQLite file (WAL) per run, plus kept weight files.

Layout of a run directory::

    run.sqlite          config, models, tasks, evaluations, generations, emitter states
    weights/<sha256>.safetensors   kept weights by content digest (see run/weight_cache.py)
    weights/staging/    children of the generation in progress

A generation is committed in one transaction, which also rewrites the
``weight_files`` table (the files kept). Files new to it are linked into
place just before the transaction; files it no longer lists are deleted
after it, and any stray file is cleaned up on open. So a run killed at any
point reopens at its last committed generation with nothing committed lost.

Two tables live outside that transaction: ``answer_cache`` (a response per
weights digest, decoding settings and prompt digest) and ``file_digests``.
Their rows are pure functions of their keys, so they are written as soon as
they are known and survive a crash: a resumed run never generates again
what it had generated before the crash.

When the run has finished, the task force is written in one more transaction
(table ``task_force``, and in ``meta`` the seeds that form the seed experts'
own task force, ``seed_task_force``); then ``weight_files`` is trimmed to
the budget (:meth:`RunStore.save_weight_files`).

One process writes a run: the writer holds an exclusive ``flock`` on
``run.lock`` (released by the kernel however the process ends). Readers
(``status``, ``report``, ``export``, ...) open the file read-only and never
create or change anything, so they work on a read-only copy too: the writer
leaves WAL mode when it closes, so that a clean store has no ``-wal`` or
``-shm`` file for a reader to need.

A run folder may come from elsewhere (a tarball): the lock, the database and
the ``weights`` folders are refused when they are symbolic links (and the lock
or, for the writer, the database when they are hard links to other files), and
a kept weight file is trusted only once its bytes hash to the digest recorded
for it (:meth:`RunStore.kept_file`). The writer removes only files of the
names it makes itself; a new run refuses a folder that already has a
``weights`` folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .digest import file_digest
from .errors import AcdcError
from .records import ArchiveRow, EvaluationRow, ModelRow, TaskRow, params

#: The layout this code writes; a store that says it is newer is refused.
SCHEMA_VERSION = 1
#: Tables every run store has had.
CORE_TABLES = ("meta", "models", "tasks", "evaluations", "generations")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, recipe TEXT NOT NULL, parents TEXT NOT NULL,
    generation INTEGER NOT NULL, fitness REAL, status TEXT NOT NULL,
    reason TEXT, digest TEXT);
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, description TEXT NOT NULL,
    capability TEXT NOT NULL, difficulty INTEGER NOT NULL, source TEXT NOT NULL,
    generator TEXT NOT NULL, params TEXT NOT NULL, parent_id TEXT,
    generation INTEGER NOT NULL, status TEXT NOT NULL, reason TEXT,
    instances TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    model_id TEXT NOT NULL, task_id TEXT NOT NULL, score REAL NOT NULL,
    generation INTEGER NOT NULL, answers TEXT NOT NULL,
    PRIMARY KEY (model_id, task_id));
CREATE TABLE IF NOT EXISTS generations (
    generation INTEGER PRIMARY KEY, archive TEXT NOT NULL, active TEXT NOT NULL,
    stats TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS emitter_states (generation INTEGER PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS task_force (
    id INTEGER PRIMARY KEY CHECK (id = 1), model_ids TEXT NOT NULL,
    coverage REAL NOT NULL, seed_coverage REAL NOT NULL, n_tasks INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS answer_cache (
    weights TEXT NOT NULL, decoding TEXT NOT NULL, prompt TEXT NOT NULL,
    response TEXT NOT NULL, PRIMARY KEY (weights, decoding, prompt));
CREATE TABLE IF NOT EXISTS weight_files (
    digest TEXT PRIMARY KEY, size INTEGER NOT NULL, seed INTEGER NOT NULL, last_used INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS file_digests (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, digest TEXT NOT NULL);
"""


class RunLock:
    """The writer's exclusive lock on a run directory (``run.lock`` holds the writer's pid)."""

    def __init__(self, run_dir: Path) -> None:
        path = Path(run_dir) / "run.lock"
        self.fd: int | None = None
        try:
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            if os.path.islink(path):
                raise AcdcError(f"{path} is a symbolic link; a run's lock must be its own file "
                                "(refusing to write through it)") from None
            raise AcdcError(f"cannot write to the run directory {run_dir}: {exc.strerror}") from None
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink > 1:
            self.release()
            what = "a hard link to another file" if stat.S_ISREG(st.st_mode) else "not a regular file"
            raise AcdcError(f"{path} is {what}; a run's lock must be its own file (refusing to write through it)")
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(self.fd, 32).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise AcdcError(f"run {run_dir} is in use by process {holder} (a run or resume of it); "
                            "one writer at a time") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


#: The files of a run folder that are never followed through a symbolic link.
RUN_FILES = ("run.lock", "run.sqlite", "run.sqlite-wal", "run.sqlite-shm", "run.sqlite-journal", "weights",
             "weights/staging")
#: Names the writer makes under weights/ (kept files) and weights/staging/ (children, partial files, rebuild
#: scratch folders): the only ones it removes.
KEPT_NAME = re.compile(r"[0-9a-f]{64}\.safetensors")
STAGED_NAME = re.compile(r"(m\d+|[0-9a-f]{64})(\.safetensors)?(\.partial)?|\.acdc-rebuild-\d+-.*")


def _refuse_links(run_dir: Path, writer: bool) -> None:
    """One line naming a run file that is a symbolic link (or, for the writer, a database with other hard
    links): a run folder received from elsewhere must not make the engine read or write other files."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.is_symlink():
            raise AcdcError(f"{path} is a symbolic link; a run's files must be its own (refusing to follow it)")
    db = run_dir / "run.sqlite"
    if writer and db.is_file() and db.stat().st_nlink > 1:
        raise AcdcError(f"{db} is a hard link to another file, which writing the run would change too; "
                        "copy the run folder (cp -r) and resume the copy")


def _wal_header(db_path: Path) -> bool:
    """Whether the database file says it is in WAL mode (bytes 18 and 19 of its header are 2)."""
    try:
        with open(db_path, "rb") as f:
            head = f.read(20)
    except OSError:
        return False
    return len(head) == 20 and head[18] == 2 and head[19] == 2


def _connect(db_path: Path, writer: bool) -> sqlite3.Connection:
    """The writer's connection, or a read-only one that creates no file: ``mode=ro`` where the store is
    in rollback mode (a clean store) or its WAL files exist (a live or killed writer's), ``immutable``
    where a store left in WAL mode has no WAL file (so nothing is pending) or even the WAL index cannot be
    made (a read-only mount)."""
    if writer:
        return sqlite3.connect(db_path, isolation_level=None)
    uri = db_path.resolve().as_uri()
    wal = db_path.with_name(db_path.name + "-wal")
    queries = ("mode=ro", "mode=ro&immutable=1")
    if _wal_header(db_path) and not os.path.lexists(wal):
        queries = ("mode=ro&immutable=1",)
    for query in queries:
        conn = sqlite3.connect(f"{uri}?{query}", uri=True, isolation_level=None)
        try:
            conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.OperationalError:
            conn.close()
    raise AcdcError(f"cannot read {db_path} (not even read-only)")


def _check_run_store(conn: sqlite3.Connection, db_path: Path) -> None:
    """Refuses, in one line, a SQLite file that is not a run store this code can read."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "models" in tables and "digest" not in {r[1] for r in conn.execute("PRAGMA table_info(models)")}:
        raise AcdcError(f"run {db_path.parent} was written by an older acdc-engine (weights by model id); "
                        "start a new run")
    missing = [t for t in CORE_TABLES if t not in tables]
    if missing:
        raise AcdcError(f"{db_path} is not an acdc-engine run store (no table {missing[0]})")
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    if "config" not in meta:
        raise AcdcError(f"{db_path} is not an acdc-engine run store (no config)")
    version = int(meta.get("schema", "1"))
    if version > SCHEMA_VERSION:
        raise AcdcError(f"{db_path} was written by a newer acdc-engine (store schema {version}; this one "
                        f"reads up to {SCHEMA_VERSION})")


@dataclass
class Commit:
    """Everything one generation adds or changes, written in one transaction."""

    generation: int
    born: list[str] = field(default_factory=list)  # ids of the models born in this generation, in order
    models: list[ModelRow] = field(default_factory=list)  # their rows, built when the generation settles
    model_updates: list[tuple[str, str, float | None]] = field(default_factory=list)  # (id, status, fitness)
    tasks: list[TaskRow] = field(default_factory=list)
    task_updates: list[tuple[str, str, str | None]] = field(default_factory=list)  # (id, status, reason)
    evaluations: list[EvaluationRow] = field(default_factory=list)
    archive: list[ArchiveRow] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    breeding: dict[str, float] = field(default_factory=dict)  # shares of this generation's children (loop stats)
    new_files: dict[str, Path] = field(default_factory=dict)  # digest -> file to place at weights/<digest>
    weight_files: list[dict] = field(default_factory=list)  # every row of `weight_files` after this commit
    emitter_state: dict | None = None  # what the emitter carries to the next generation (CMA-ES), if anything


class RunStore:
    """Reads and writes one run directory."""

    def __init__(self, run_dir: Path, *, writer: bool = False) -> None:
        """``writer``: the one process that runs the loop (it takes the run's lock and alone removes
        uncommitted files); any other opens the file read-only."""
        self.run_dir = Path(run_dir)
        self.weights_dir = self.run_dir / "weights"
        self.staging_dir = self.weights_dir / "staging"
        self.db_path = self.run_dir / "run.sqlite"
        self.writer = writer
        self._verified: dict[str, tuple[int, int, int, int]] = {}  # digest -> the checked file's identity
        self.lock = None
        _refuse_links(self.run_dir, writer)
        self.lock = RunLock(self.run_dir) if writer else None
        try:
            fresh = writer and not self.db_path.exists()
            self.conn = _connect(self.db_path, writer)
            self.conn.row_factory = sqlite3.Row
            if not fresh:
                _check_run_store(self.conn, self.db_path)
            if writer:
                self.conn.execute("PRAGMA journal_mode=WAL")
                self.conn.execute("PRAGMA synchronous=FULL")
                self.conn.executescript(SCHEMA)
        except sqlite3.OperationalError as exc:  # locked, I/O error, disk full: the file may be fine
            self.close()
            raise AcdcError(f"cannot use {self.db_path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            self.close()
            raise AcdcError(f"{self.db_path} is not an acdc-engine run store ({exc})") from None
        except AcdcError:
            self.close()
            raise
        if writer:
            self.staging_dir.parent.mkdir(mode=0o700, exist_ok=True)
            self.staging_dir.mkdir(mode=0o700, exist_ok=True)
            self._clean_strays()

    @classmethod
    def create(cls, run_dir: Path, config_json: str) -> RunStore:
        """A new run's store. The file appears whole (config in it) or not at all, so a run killed
        at any moment can be resumed or started again."""
        run_dir = Path(run_dir)
        db_path = run_dir / "run.sqlite"
        if db_path.is_file() and db_path.stat().st_size == 0:
            db_path.unlink()  # an empty file (a reader opened it before it existed) holds no run
        if db_path.exists():
            raise AcdcError(f"run directory {run_dir} already holds a run; use `acdc-engine resume {run_dir}`")
        if os.path.lexists(run_dir / "weights"):  # a run writes (and cleans) weights/: never someone else's
            raise AcdcError(f"{run_dir / 'weights'} already exists and is not a run's; choose a new or empty "
                            "folder for the run")
        _refuse_links(run_dir, writer=True)
        try:  # the run's files are the user's alone (task code in the sandbox's fallback runs as another uid)
            run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise AcdcError(f"cannot create the run directory {run_dir}: {exc.strerror}") from None
        new = run_dir / f".run.sqlite.{os.getpid()}.new"
        try:
            os.close(os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            conn = sqlite3.connect(new, isolation_level=None)
            with conn:
                conn.executescript(SCHEMA)
                conn.executemany("INSERT INTO meta VALUES (?, ?)",
                                 [("config", config_json), ("schema", str(SCHEMA_VERSION))])
            conn.close()
            os.link(new, db_path)  # fails if another process created the run meanwhile
        except FileExistsError:
            raise AcdcError(f"run directory {run_dir} already holds a run; use `acdc-engine resume {run_dir}`") \
                from None
        except (OSError, sqlite3.OperationalError) as exc:
            raise AcdcError(f"cannot create the run store {db_path}: {getattr(exc, 'strerror', None) or exc}") \
                from None
        finally:
            new.unlink(missing_ok=True)
        return cls(run_dir, writer=True)

    @classmethod
    def open(cls, run_dir: Path, *, writer: bool = False) -> RunStore:
        """An existing run; readers (status, export, ...) open it read-only."""
        if not (Path(run_dir) / "run.sqlite").is_file():
            raise AcdcError(f"{run_dir} is not a run directory (no run.sqlite)")
        return cls(run_dir, writer=writer)

    def close(self) -> None:
        if getattr(self, "conn", None) is not None:
            if self.writer:  # back to rollback mode: a clean store has no WAL files, so readers make none
                try:
                    self.conn.execute("PRAGMA busy_timeout=200")
                    self.conn.execute("PRAGMA journal_mode=DELETE")
                except sqlite3.Error:
                    pass  # a reader has it open: it stays in WAL mode, which readers handle too
            self.conn.close()
            self.conn = None
        if self.lock is not None:
            self.lock.release()

    # --- reading ----------------------------------------------------------

    def config_json(self) -> str:
        return self.conn.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0]

    def config(self):
        """The run's config (:class:`~acdc_engine.config.Config`); one line naming the field if it no longer
        validates."""
        from .config import validate

        try:
            return validate(json.loads(self.config_json()), stored=True)
        except ValueError:
            raise AcdcError(f"run {self.run_dir}: its stored config is not JSON") from None
        except AcdcError as exc:
            raise AcdcError(f"run {self.run_dir}: its stored {exc}") from None

    def last_generation(self) -> int | None:
        return self.conn.execute("SELECT MAX(generation) FROM generations").fetchone()[0]

    def generation(self, gen: int) -> dict[str, Any]:
        row = self.conn.execute("SELECT * FROM generations WHERE generation=?", (gen,)).fetchone()
        state = {k: json.loads(row[k]) for k in ("archive", "active", "stats")}
        return state | {"archive": [ArchiveRow.stored(r) for r in state["archive"]]}

    def all_stats(self) -> list[dict]:
        rows = self.conn.execute("SELECT stats FROM generations ORDER BY generation")
        return [json.loads(r[0]) for r in rows]

    def emitter_state(self, gen: int) -> dict | None:
        """The emitter's state committed with generation ``gen`` (``None``: the emitter keeps none)."""
        row = self.conn.execute("SELECT state FROM emitter_states WHERE generation=?", (gen,)).fetchone()
        return None if row is None else json.loads(row[0])

    def models(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM models ORDER BY id").fetchall()

    def tasks(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM tasks ORDER BY id").fetchall()

    def scores(self) -> dict[tuple[str, str], float]:
        rows = self.conn.execute("SELECT model_id, task_id, score FROM evaluations")
        return {(r[0], r[1]): r[2] for r in rows}

    def instance_scores(self) -> dict[tuple[str, str], list[float]]:
        """Each (model, task)'s score per instance, in the task's instance order."""
        rows = self.conn.execute("SELECT model_id, task_id, answers FROM evaluations")
        return {(r[0], r[1]): [float(a["score"]) for a in json.loads(r[2])] for r in rows}

    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def task_force(self) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM task_force").fetchone()

    def weights_path(self, digest: str) -> Path:
        """Where the kept file with this content digest lives (whether or not it is there)."""
        return self.weights_dir / f"{digest}.safetensors"

    def kept_file(self, digest: str) -> tuple[Path | None, str | None]:
        """The kept file with these weights, checked before it is trusted: ``(path, None)`` when its bytes
        hash to ``digest``, ``(None, None)`` when there is none, ``(None, problem)`` when it is there but
        damaged (a changed or truncated file, a link): ``problem`` is one line naming the file. A file is
        hashed once per process while its identity (inode, size, mtime) stays the same."""
        path = self.weights_path(digest)
        try:
            st = path.lstat()
        except FileNotFoundError:
            return None, None
        if not stat.S_ISREG(st.st_mode):
            return None, f"kept weights {path} are not a regular file"
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if self._verified.get(digest) == key:
            return path, None
        try:
            got = file_digest(path)
        except OSError as exc:
            return None, f"cannot read kept weights {path}: {exc.strerror}"
        if got != digest:
            return None, (f"kept weights {path} do not match their recorded digest ({st.st_size} bytes hashing "
                          f"to {got[:12]}, recorded {digest[:12]})")
        self._verified[digest] = key
        return path, None

    def mark_verified(self, digest: str, path: Path | None = None) -> None:
        """Records that the file at ``path`` (default: the kept one) holds ``digest``'s bytes (this process
        wrote or hashed it), so :meth:`kept_file` trusts it without hashing it again."""
        with_ok = (path or self.weights_path(digest)).lstat()
        self._verified[digest] = (with_ok.st_dev, with_ok.st_ino, with_ok.st_size, with_ok.st_mtime_ns)

    def weight_files(self) -> list[sqlite3.Row]:
        return self.conn.execute("SELECT * FROM weight_files ORDER BY digest").fetchall()

    def disk_usage(self) -> dict[str, int]:
        """Bytes of the run folder's files: ``own`` (only here) and ``shared`` (hard links that other folders,
        such as the seed cache, also hold); and how many models are kept as files and as recipes only."""
        own = shared = 0
        for path in self.run_dir.rglob("*"):
            try:
                st = path.lstat()
            except OSError:  # removed meanwhile
                continue
            if path.is_file() and not path.is_symlink():
                if st.st_nlink > 1:
                    shared += st.st_size
                else:
                    own += st.st_size
        as_files = sum(self.weights_path(r["digest"]).is_file() for r in self.models())
        return {"own_bytes": own, "shared_bytes": shared, "models_as_files": as_files,
                "models_as_recipes": len(self.models()) - as_files}

    def staged_path(self, model_id: str) -> Path:
        return self.staging_dir / f"{model_id}.safetensors"

    # --- evaluation cache (outside the generation transaction) -------------

    def cached_answers(self, weights: str, decoding: str, prompts: list[str]) -> dict[str, str]:
        """Cached responses by prompt digest, for those of ``prompts`` that have one."""
        out: dict[str, str] = {}
        for start in range(0, len(prompts), 500):
            chunk = prompts[start : start + 500]
            rows = self.conn.execute(
                f"SELECT prompt, response FROM answer_cache WHERE weights=? AND decoding=? AND prompt IN "
                f"({','.join('?' * len(chunk))})", (weights, decoding, *chunk))
            out.update((r[0], r[1]) for r in rows)
        return out

    def cache_answers(self, weights: str, decoding: str, answers: dict[str, str]) -> None:
        """Stores responses by prompt digest at once, in their own transaction."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany("INSERT OR REPLACE INTO answer_cache VALUES (?, ?, ?, ?)",
                                  [(weights, decoding, p, r) for p, r in answers.items()])

    def file_digest(self, path: Path) -> str:
        """SHA-256 of a file, remembered while its size and mtime stay the same."""
        st = Path(path).stat()
        row = self.conn.execute("SELECT digest FROM file_digests WHERE path=? AND size=? AND mtime_ns=?",
                                (str(path), st.st_size, st.st_mtime_ns)).fetchone()
        if row:
            return row[0]
        digest = file_digest(path)
        self.conn.execute("INSERT OR REPLACE INTO file_digests VALUES (?, ?, ?, ?)",
                          (str(path), st.st_size, st.st_mtime_ns, digest))
        return digest

    # --- writing ----------------------------------------------------------

    def commit(self, c: Commit) -> None:
        """Writes one generation atomically (see the module docstring)."""
        for digest, source in c.new_files.items():
            self._place(source, self.weights_path(digest))
            if self.weights_path(digest).stat().st_ino == Path(source).stat().st_ino:
                self.mark_verified(digest)  # hashed by this process when it was staged (or resolved, a seed)
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT INTO models VALUES (:id, :recipe, :parents, :generation, :fitness, :status, :reason, :digest)",
                params(c.models),
            )
            self.conn.executemany("UPDATE models SET status=?, fitness=? WHERE id=?",
                                  [(s, f, i) for i, s, f in c.model_updates])
            self.conn.executemany(
                "INSERT INTO tasks VALUES (:id, :name, :description, :capability, :difficulty, :source,"
                " :generator, :params, :parent_id, :generation, :status, :reason, :instances)",
                params(c.tasks),
            )
            self.conn.executemany("UPDATE tasks SET status=?, reason=? WHERE id=?",
                                  [(s, r, i) for i, s, r in c.task_updates])
            self.conn.executemany(
                "INSERT OR REPLACE INTO evaluations VALUES (:model_id, :task_id, :score, :generation, :answers)",
                params(c.evaluations),
            )
            self.conn.execute("DELETE FROM weight_files")
            self.conn.executemany("INSERT INTO weight_files VALUES (:digest, :size, :seed, :last_used)",
                                  c.weight_files)
            self.conn.execute(
                "INSERT INTO generations VALUES (?, ?, ?, ?)",
                (c.generation, json.dumps(params(c.archive)), json.dumps(c.active), json.dumps(c.stats)),
            )
            if c.emitter_state is not None:
                self.conn.execute("INSERT INTO emitter_states VALUES (?, ?)",
                                  (c.generation, json.dumps(c.emitter_state)))
        self._clean_strays()

    def save_task_force(self, model_ids: list[str], coverage: float, seed_coverage: float, n_tasks: int,
                        evaluations: list[EvaluationRow], seed_force: list[str] | None = None) -> None:
        """The run's task force, its Coverage and the seed experts' (``seed_force``: which seeds form theirs,
        kept in ``meta`` as ``seed_task_force``)."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                "INSERT OR REPLACE INTO evaluations VALUES (:model_id, :task_id, :score, :generation, :answers)",
                params(evaluations),
            )
            self.conn.execute(
                "INSERT OR REPLACE INTO task_force VALUES (1, ?, ?, ?, ?)",
                (json.dumps(model_ids), coverage, seed_coverage, n_tasks),
            )
            if seed_force is not None:
                self.conn.execute("INSERT OR REPLACE INTO meta VALUES ('seed_task_force', ?)",
                                  (json.dumps(seed_force),))
        self._clean_strays()  # files rebuilt for the task force

    def save_weight_files(self, rows: list[dict]) -> None:
        """The ``weight_files`` table replaced by ``rows`` (the files still kept), and the others deleted."""
        with self.conn:
            self.conn.execute("BEGIN")
            self.conn.execute("DELETE FROM weight_files")
            self.conn.executemany("INSERT INTO weight_files VALUES (:digest, :size, :seed, :last_used)", rows)
        self._clean_strays()

    def seed_task_force(self) -> list[str] | None:
        """The seed experts' own task force (model ids) beside the run's, once the run has finished."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'seed_task_force'").fetchone()
        return json.loads(row[0]) if row else None

    def _place(self, source: Path, target: Path) -> None:
        """Puts ``source``'s bytes at ``target`` atomically: a hard link, else a copy through staging."""
        if target.is_file():
            return  # same digest, same bytes
        try:
            os.link(os.path.realpath(source), target)  # the file itself: link() would link a symbolic link
        except OSError:
            partial = self.staging_dir / f"{target.name}.partial"
            shutil.copyfile(source, partial)
            partial.replace(target)

    def _clean_strays(self) -> None:
        """Removes staged children and weight files that ``weight_files`` does not list: only entries of the
        names the writer makes (a file of another name is not the run's to delete)."""
        self.staging_dir.mkdir(parents=True, exist_ok=True)
        for path in self.staging_dir.iterdir():
            if not STAGED_NAME.fullmatch(path.name):
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        keep = {r[0] for r in self.conn.execute("SELECT digest FROM weight_files")}
        for path in self.weights_dir.iterdir():
            if KEPT_NAME.fullmatch(path.name) and path.stem not in keep and not path.is_dir():
                path.unlink(missing_ok=True)
