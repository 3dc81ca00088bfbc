"""Lineage trees and exporting any model, kept or rebuilt from its recipes."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys

import torch
from safetensors.torch import load_file

from acdc_engine.digest import file_digest
from test_loop_tiny import run_once


def cli(*args):
    return subprocess.run([sys.executable, "-m", "acdc_engine", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "200", "ACDC_PROGRESS_EVERY_S": "0.01"})


def test_lineage_and_export_of_kept_and_rebuilt_models(tiny_config, tmp_path):
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path / "run"
    run_once(tiny_config(**{"run.generations": 2}), run_dir)
    db = sqlite3.connect(run_dir / "run.sqlite")
    elite, digest = db.execute("SELECT id, digest FROM models WHERE status = 'elite' AND parents != '[]' "
                               "ORDER BY generation DESC").fetchone()
    gone, gone_digest = db.execute("SELECT id, digest FROM models WHERE status != 'elite' AND generation > 0"
                                   ).fetchone()

    tree = cli("lineage", str(run_dir), elite)
    assert tree.returncode == 0, tree.stderr
    assert tree.stdout.startswith(elite) and "seed:" in tree.stdout and "linear+svd" in tree.stdout

    out = tmp_path / "export"
    assert cli("export", str(run_dir), elite, str(out / "kept")).returncode == 0
    kept = load_file(out / "kept" / "model.safetensors")
    stored = load_file(run_dir / "weights" / f"{digest}.safetensors")
    assert all(torch.equal(kept[k], stored[k]) for k in stored)

    for name in ("rebuilt", "again"):
        result = cli("export", str(run_dir), gone, str(out / name))
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"rebuilding {gone} from its ancestry ..." in result.stdout  # progress lines into a pipe
        assert re.search(rf"rebuilding {gone} from its ancestry: (\d+)/\1, .* elapsed, ETA .*; done", result.stdout)
    a, b = load_file(out / "rebuilt" / "model.safetensors"), load_file(out / "again" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert file_digest(out / "rebuilt" / "model.safetensors") == gone_digest  # the bytes evaluated at its birth
    model = AutoModelForCausalLM.from_pretrained(out / "rebuilt")
    assert torch.equal(model.model.embed_tokens.weight, a["model.embed_tokens.weight"])
    assert (out / "rebuilt" / "tokenizer.json").is_file()

    missing = cli("lineage", str(run_dir), "m9999")
    assert missing.returncode == 3 and "no model 'm9999'" in missing.stderr
