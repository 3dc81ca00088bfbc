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
    wanted = ["acdc_engine/default_config.toml", "acdc_engine/plugins/sandbox_worker.py"]
    wanted += [f"acdc_engine/plugins/prompts/{p.name}" for p in (ROOT / "plugins" / "prompts").glob("*.md")]
    wanted += [f"acdc_engine/plugins/scientist/prompts/{p.name}"
               for p in (ROOT / "plugins" / "scientist" / "prompts").glob("*.md")]
    assert len(wanted) > 5 and not [w for w in wanted if w not in names]
