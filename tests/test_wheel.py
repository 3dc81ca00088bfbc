"""The built wheel holds everything read at run time, and building it warns about nothing of ours."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_its_data_files_and_builds_without_package_warnings(tmp_path):
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    log = done.stdout + done.stderr
    for warning in ("is absent from the `packages` configuration", "License classifiers are deprecated",
                    "`project.license` as a TOML table is deprecated"):
        assert warning not in log
    (wheel,) = tmp_path.glob("acdc_engine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    wanted = ["acdc_engine/default_config.toml", "acdc_engine/plugins/sandbox/sandbox_worker.py"]
    wanted += [f"acdc_engine/plugins/llm/prompts/{p.name}" for p in (ROOT / "plugins" / "llm" / "prompts").glob("*.md")]
    wanted += [f"acdc_engine/plugins/scientist/prompts/{p.name}"
               for p in (ROOT / "plugins" / "scientist" / "prompts").glob("*.md")]
    deltas = [f"acdc_engine/plugins/forge/deltas/{p.name}" for p in (ROOT / "plugins" / "forge" / "deltas").glob("*")]
    assert len(deltas) == 3 and all(d.endswith(".safetensors") for d in deltas)  # the shipped default experts
    wanted += deltas
    assert len(wanted) > 5 and not [w for w in wanted if w not in names]

    # installed whole into a fresh environment, away from the source tree: its commands and data work there
    env_dir = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True, timeout=120)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = [p for p in sys.path if p.endswith("site-packages")]  # the dependencies only: a plain path, whose
    (site / "deps.pth").write_text("\n".join(deps) + "\n")  # .pth files (our editable install) are not read
    python = env_dir / "bin" / "python"
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                           "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    check = ("import acdc_engine, sys; from acdc_engine.plugins.scientist.scientist import prompt; "
             "assert acdc_engine.__file__.startswith(sys.argv[1]), acdc_engine.__file__; "
             "assert len(prompt('system')) > 100 and len(prompt('initial')) > 100; "
             "from acdc_engine.config import load_config; load_config(None, []); print('ok')")
    away = tmp_path / "elsewhere"
    away.mkdir()
    loaded = subprocess.run([str(python), "-c", check, str(site)], cwd=away, capture_output=True, text=True,
                            timeout=300)
    assert loaded.returncode == 0 and loaded.stdout.strip() == "ok", loaded.stderr[-2000:]
    listed = subprocess.run([str(env_dir / "bin" / "acdc-engine"), "plugins"], cwd=away, capture_output=True,
                            text=True, timeout=300, env={"PATH": "/usr/bin:/bin", "COLUMNS": "200"})
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "scientist" in listed.stdout and "taskgen" in listed.stdout and "merge" in listed.stdout
