"""`acdc-engine report` on a real tiny run: the page embeds real PNG plots."""

from __future__ import annotations

import base64
import re

from click.testing import CliRunner

from acdc_engine.ui.cli import main
from test_loop_tiny import run_once


def test_report_embeds_png_plots_of_a_tiny_run(tiny_config, tmp_path):
    run_once(tiny_config(**{"run.generations": 1, "tasks.initial_families": 4}), tmp_path / "run")
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(tmp_path / "run"), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert [a for a, _ in images] == ["Coverage and fitness over generations", "Task pool, acceptance and diversity",
                                      "Skill matrix", "Lineage", "Task embeddings"]
    for _, data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Task force" in page and "Embedding: " in page


def test_report_of_a_missing_run_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 3 and "is not a run directory" in result.stderr
