"""The run store and the commands that write files, against hostile folders and failing writes (issue 39,
items 7-12): no command deletes or writes through what it did not create, stored weights are checked
against their recorded digest before they are trusted, a failed write leaves nothing behind and names its
target, and readers never write."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from acdc_engine.ui.cli import main
from acdc_engine.config import config_model, load_config
from acdc_engine.digest import file_digest
from acdc_engine.errors import AcdcError
from acdc_engine.store import RunStore
from conftest import run_in_process, tiny_overrides


def engine(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "acdc_engine", *map(str, args)], capture_output=True, text=True,
                          timeout=300, **kw)


def one_line_error(done, *needles: str, code: int = 3) -> str:
    """Exit ``code`` (3: bad input, 1: runtime) and one line, no traceback, containing every needle (a
    subprocess or a CliRunner result); the error is on stderr."""
    expected = code
    if isinstance(done, subprocess.CompletedProcess):
        text, code, err = (done.stdout + done.stderr).strip(), done.returncode, done.stderr
    else:
        text, code, err = done.output.strip(), done.exit_code, done.stderr
    # off a terminal, export's progress line comes first (see test_weight_cache): not part of the error
    text = "\n".join(line for line in text.splitlines() if not line.startswith("rebuilding "))
    assert code == expected and "Traceback" not in text and len(text.splitlines()) == 1, text
    assert all(n in text for n in needles) and text.splitlines()[0] in err, text
    return text


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder`` (not following links), with a regular file's bytes."""
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        out[rel] = path.read_bytes() if path.is_file() and not path.is_symlink() else None
    return out


def new_run(path: Path) -> Path:
    RunStore.create(path, config_model()().model_dump_json()).close()
    return path


def sets(tiny_models, tmp_path, **extra) -> list[str]:
    return [a for o in tiny_overrides(tiny_models, tmp_path, **extra) for a in ("--set", o)]


# --- 7. a folder that is not a run keeps its files; a failed start leaves nothing it made -----------------

def test_a_run_dir_holding_weights_is_refused_and_keeps_every_file(tmp_path):
    folder = tmp_path / "mine"
    (folder / "weights" / "staging").mkdir(parents=True)
    (folder / "weights" / "model.safetensors").write_bytes(b"my weights")
    (folder / "weights" / "staging" / "draft.safetensors").write_bytes(b"my draft")
    (folder / "notes.txt").write_text("mine")
    before = listing(folder)
    done = engine("run", "--run-dir", folder, "--set", "models.forge_missing=false",
                  "--set", f"models.seeds=['{tmp_path / 'missing-model'}']")
    one_line_error(done, str(folder / "weights"))
    assert listing(folder) == before
    with pytest.raises(AcdcError, match="weights"):  # the store itself, whatever calls it
        RunStore.create(folder, "{}")
    assert listing(folder) == before


def test_a_failed_start_in_an_existing_folder_leaves_only_what_it_held(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    done = engine("run", "--run-dir", folder, "--set", "models.forge_missing=false",
                  "--set", f"models.seeds=['{tmp_path / 'missing-model'}']")
    one_line_error(done, "does not exist")
    assert listing(folder) == {"notes.txt": b"mine"}  # no run.lock, run.sqlite or weights/


def test_an_unknown_model_leaves_no_empty_output_folder(tmp_path):
    done = engine("run", "--set", f"run.output_dir='{tmp_path / 'runs'}'", "--set", "models.forge_missing=false",
                  "--set", "models.seeds=['no-such-model']", cwd=tmp_path)
    one_line_error(done, "no-such-model")
    assert not (tmp_path / "runs").exists()


# --- 10. run.lock and run files are not followed through symbolic links -----------------------------------

def test_a_symlinked_run_lock_is_refused_and_its_target_kept(tmp_path):
    run = new_run(tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / "run.lock").unlink(missing_ok=True)
    (run / "run.lock").symlink_to(victim)
    with pytest.raises(AcdcError, match=r"run.lock .*symbolic link"):
        RunStore.open(run, writer=True)
    assert victim.read_text() == "precious"
    one_line_error(engine("resume", run), "run.lock", "symbolic link")
    assert victim.read_text() == "precious"


def test_a_hard_linked_run_lock_and_symlinked_run_files_are_refused(tmp_path):
    run = new_run(tmp_path / "run")
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    (run / "run.lock").unlink(missing_ok=True)
    os.link(victim, run / "run.lock")
    with pytest.raises(AcdcError, match=r"run.lock .*hard link"):
        RunStore.open(run, writer=True)
    assert victim.read_text() == "precious"
    (run / "run.lock").unlink()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(run / "weights")
    (run / "weights").symlink_to(elsewhere)
    with pytest.raises(AcdcError, match=r"weights .*symbolic link"):
        RunStore.open(run, writer=True)
    assert list(elsewhere.iterdir()) == []


# --- 12. readers never write ------------------------------------------------------------------------------

def test_status_and_lineage_on_a_clean_store_create_no_file(tmp_path):
    run = new_run(tmp_path / "run")
    before = listing(run)
    assert CliRunner().invoke(main, ["status", str(run)]).exit_code == 0
    assert CliRunner().invoke(main, ["status", "--json", str(run)]).exit_code == 0
    one_line_error(CliRunner().invoke(main, ["lineage", str(run), "m0001"]), "no model 'm0001'")
    assert listing(run) == before
    assert not list(run.glob("run.sqlite-*"))


# --- 11. one line instead of a traceback; failed writes leave nothing --------------------------------------

def test_a_seed_whose_config_is_not_json_is_one_line(tiny_models, tmp_path):
    bad = tmp_path / "bad-seed"
    shutil.copytree(tiny_models["b"], bad)
    (bad / "config.json").write_text("<html>not json</html>")
    run = tmp_path / "run"
    done = engine("run", "--run-dir", run, *sets({**tiny_models, "b": bad}, tmp_path, **{"run.generations": 0}))
    one_line_error(done, str(bad / "config.json"), "not JSON")
    assert not run.exists()


class _Canned(BaseHTTPRequestHandler):
    body, content_type = b"", "text/html"

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


@pytest.mark.parametrize("content_type, body", [
    ("text/html", b"<html><body>Welcome to nginx!</body></html>"),
    ("application/json", b"<html>not json</html>"),
    ("application/json", b'{"unexpected": true}'),
    ("application/json", b'{"choices": "none"}'),
])
def test_an_llm_endpoint_answering_200_with_something_else_is_one_line(content_type, body):
    from acdc_engine.plugins.llm.llm_client import LLMError, OpenAIChat

    handler = type("Handler", (_Canned,), {"body": body, "content_type": content_type})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    llm = OpenAIChat(base_url=url, model="m", api_key="k", temperature=0.5, max_tokens=8, timeout_s=5.0,
                     max_retries=0, concurrency=1)
    try:
        with pytest.raises(LLMError) as err:
            llm.chat([[{"role": "user", "content": "hi"}]])
        message = str(err.value)
        assert message.startswith(f"LLM {url}: ") and "\n" not in message and len(message) < 400
    finally:
        llm.close()
        httpd.shutdown()
        httpd.server_close()


def test_report_out_that_cannot_be_written_leaves_no_partial_file(tiny_run, tmp_path):
    run = tiny_run[0]
    target = tmp_path / "report.html"
    target.mkdir()  # a directory where the page would go
    one_line_error(CliRunner().invoke(main, ["report", str(run), "--out", str(target)]), str(target))
    assert not list(tmp_path.rglob("*.partial")) and not list(tmp_path.glob(".report*"))


def test_evaluate_refuses_a_bad_json_destination_before_evaluating(tmp_path, monkeypatch):
    import acdc_engine.evaluation.systems

    run = new_run(tmp_path / "run")
    bench = tmp_path / "b.jsonl"
    bench.write_text(json.dumps({"question": "1+1?", "answer": "2"}) + "\n")
    started = []
    monkeypatch.setattr(acdc_engine.evaluation.systems, "Evaluation", lambda *a, **k: started.append(1) or 1 / 0)
    for bad, needle in ((tmp_path, "is a directory"), (tmp_path / "no" / "r.json", "does not exist")):
        result = CliRunner().invoke(main, ["evaluate", str(run), "--benchmark", str(bench), "--json", str(bad)])
        one_line_error(result, "--json", str(bad), needle)
    assert started == []


# --- 8, 9, 11: export on a real tiny run ------------------------------------------------------------------

def _tiny_run(tiny_models, root: Path) -> tuple[Path, dict[str, Path]]:
    """A generation-0 run on copies of the tiny seeds (so that a test may damage them)."""
    seeds = {}
    for name in ("a", "b"):
        seeds[name] = root / f"seed-{name}"
        shutil.copytree(tiny_models[name], seeds[name])
    config = load_config(None, tiny_overrides(seeds, root, **{"run.generations": 0,
                                                               "evolution.minimal_criterion": False}))
    run_in_process(config, root / "run")
    return root / "run", seeds


@pytest.fixture(scope="module")
def tiny_run(tiny_models, tmp_path_factory):
    return _tiny_run(tiny_models, tmp_path_factory.mktemp("tiny-run"))


def _copy_run(tiny_run, tmp_path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)  # its own files (no hard link to the seeds)
    return run


def _models(run: Path) -> list[tuple[str, str, str, bool]]:
    """(id, digest, recipe, has a kept file) of every model, children first."""
    db = sqlite3.connect(f"file:{run / 'run.sqlite'}?mode=ro", uri=True)
    rows = db.execute("SELECT id, digest, recipe, parents FROM models ORDER BY parents = '[]', id").fetchall()
    db.close()
    return [(m, d, r, (run / "weights" / f"{d}.safetensors").is_file()) for m, d, r, _ in rows]


def _member(run: Path) -> tuple[str, str]:
    """A child with a kept file."""
    return next((m, d) for m, d, r, kept in _models(run) if kept and json.loads(r)["parents"])


def _seed(run: Path) -> tuple[str, str]:
    return next((m, d) for m, d, r, kept in _models(run) if not json.loads(r)["parents"])


def _flip_byte(path: Path, at: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0xFF
    os.chmod(path, 0o644)
    with open(path, "r+b") as f:
        f.write(data)


@pytest.mark.parametrize("damage", ["bit flip", "truncation"])
def test_export_of_a_damaged_member_file_names_it_and_rebuilds_it(tiny_run, tmp_path, damage):
    run = _copy_run(tiny_run, tmp_path)
    member, digest = _member(run)
    kept = run / "weights" / f"{digest}.safetensors"
    if damage == "bit flip":
        _flip_byte(kept)
    else:
        os.truncate(kept, 1000)
    result = CliRunner().invoke(main, ["export", str(run), member, str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert str(kept) in result.output and "digest" in result.output
    assert file_digest(tmp_path / "out" / "model.safetensors") == digest  # rebuilt from its recipe


def test_export_of_a_damaged_seed_file_is_one_line_naming_it(tiny_run, tmp_path):
    run = _copy_run(tiny_run, tmp_path)
    seed, digest = _seed(run)
    kept = run / "weights" / f"{digest}.safetensors"
    os.truncate(kept, 1000)
    # the seed's own folder still holds the recorded weights: the export takes them from there
    result = CliRunner().invoke(main, ["export", str(run), seed, str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert str(kept) in result.output and file_digest(tmp_path / "out" / "model.safetensors") == digest
    # where the seed's folder no longer holds them either: one line naming the damaged file, and no file
    from acdc_engine.models.lineage import rebuild_weights
    from acdc_engine.plugin_manager import build_plugin_manager

    store = RunStore.open(run)
    try:
        with pytest.raises(AcdcError, match=f"^kept weights {kept} do not match their recorded digest"):
            rebuild_weights(store, seed, hook=build_plugin_manager([]).hook, base_file=kept,
                            out_file=tmp_path / "again.safetensors", seed_files={}, on_damaged=lambda *a: None)
    finally:
        store.close()
    assert not (tmp_path / "again.safetensors").exists()


def test_resume_rebuilds_a_damaged_member_file(tiny_run, tmp_path):
    from acdc_engine.run.weight_cache import WeightCache

    run = _copy_run(tiny_run, tmp_path)
    member, digest = _member(run)
    kept = run / "weights" / f"{digest}.safetensors"
    _flip_byte(kept)
    store = RunStore.open(run, writer=True)
    rebuilt, said = [], []

    def rebuild(model_id, *, out_file):
        rebuilt.append(model_id)
        shutil.copyfile(tiny_run[0] / "weights" / f"{digest}.safetensors", out_file)

    cache = WeightCache(store, budget_mb=0, rebuild=rebuild, emit=said.append)
    try:
        assert file_digest(cache.file(member, digest)) == digest
    finally:
        store.close()
    assert rebuilt == [member] and any(str(kept) in getattr(e, "reason", "") for e in said)


def test_export_into_a_seed_folder_is_refused_and_the_seed_kept(tiny_models, tmp_path):
    run, seeds = _tiny_run(tiny_models, tmp_path)
    member, _ = _member(run)
    seed_file = seeds["a"] / "model.safetensors"
    before = file_digest(seed_file)
    stored = run / "weights" / f"{before}.safetensors"
    assert os.path.samefile(stored, seed_file)  # the run keeps its seed as a hard link
    result = CliRunner().invoke(main, ["export", str(run), member, str(seeds["a"])])
    one_line_error(result, str(seeds["a"]), "seed")
    assert file_digest(seed_file) == before == file_digest(stored)
    # a file of the export folder hard-linked to the seed: replaced, never written through
    out = tmp_path / "out"
    out.mkdir()
    os.link(seed_file, out / "model.safetensors")
    os.link(seeds["a"] / "config.json", out / "config.json")
    config_before = (seeds["a"] / "config.json").read_bytes()
    result = CliRunner().invoke(main, ["export", str(run), member, str(out)])
    assert result.exit_code == 0, result.output
    assert file_digest(seed_file) == before == file_digest(stored)
    assert (seeds["a"] / "config.json").read_bytes() == config_before
    assert file_digest(out / "model.safetensors") != before


def test_export_of_an_unknown_model_leaves_no_folder(tiny_run, tmp_path):
    one_line_error(CliRunner().invoke(main, ["export", str(tiny_run[0]), "m9999", str(tmp_path / "a" / "out")]),
                   "m9999")
    assert not (tmp_path / "a").exists()


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m"):
    """A small tmpfs at ``folder`` (root); None where it cannot be mounted."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True) if os.geteuid() == 0 and shutil.which("mount") else None
    if done is None or done.returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("which", ["member", "seed"])
def test_export_on_a_full_disk_leaves_nothing_and_names_the_target(tiny_run, tmp_path, which):
    run = _copy_run(tiny_run, tmp_path)
    model, digest = _member(run) if which == "member" else _seed(run)
    if which == "member":  # rebuilt into the target's folder rather than copied
        (run / "weights" / f"{digest}.safetensors").unlink()
    with small_disk(tmp_path / "disk") as disk:
        kw = {}
        if disk is None:  # no tmpfs: the kernel refuses files over 2 MiB instead, as a full disk would
            def limit():
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
                resource.setrlimit(resource.RLIMIT_FSIZE, (2 << 20, 2 << 20))
            kw["preexec_fn"] = limit
        out = tmp_path / "disk" / "out"
        done = engine("export", run, model, out, **kw)
        text = one_line_error(done, str(out / "model.safetensors"), code=1)
        assert str(run) not in text  # the target, not the run's source file
        assert not out.exists() and list((tmp_path / "disk").iterdir()) == []
        (tmp_path / "disk" / "out").mkdir()
        (out / "model.safetensors").write_bytes(b"an earlier export")
        done = engine("export", run, model, out, **kw)
        one_line_error(done, str(out / "model.safetensors"), code=1)
        assert listing(out) == {"model.safetensors": b"an earlier export"}  # left as it was
