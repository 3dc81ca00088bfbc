"""The machine probe behind ``generation.dtype = "auto"``: measured once, kept per machine, never a crash."""

import json

import pytest

from acdc_engine import machine
from acdc_engine.config import load_config


@pytest.fixture
def fresh(monkeypatch):
    """No dtype remembered by this process."""
    monkeypatch.setattr(machine, "_chosen", {})


def test_the_faster_dtype_wins_and_bfloat16_wins_a_tie():
    assert machine.faster({"bfloat16": 5e11, "float32": 1.5e11}) == "bfloat16"
    assert machine.faster({"bfloat16": 7e10, "float32": 1.3e11}) == "float32"  # bf16 emulated, without AMX
    assert machine.faster({"bfloat16": 1e11, "float32": 1e11}) == "bfloat16"


def test_a_real_probe_is_kept_in_the_cache_and_read_back_without_probing(tmp_path, fresh, monkeypatch):
    chosen = machine.machine_dtype(tmp_path)  # the real probe, on this machine
    assert chosen in machine.CANDIDATES
    entry = json.loads((tmp_path / "machine.json").read_text())[machine.machine_key()]
    assert entry["dtype"] == chosen and all(entry["gflops"][d] > 0 for d in machine.CANDIDATES)

    other = "float32" if chosen == "bfloat16" else "bfloat16"  # a kept answer is read, not measured again
    (tmp_path / "machine.json").write_text(json.dumps({machine.machine_key(): {**entry, "dtype": other}}))
    monkeypatch.setattr(machine, "_chosen", {})
    monkeypatch.setattr(machine, "probe", lambda: pytest.fail("probed again"))
    assert machine.machine_dtype(tmp_path) == other


def test_another_machines_entry_or_a_damaged_file_means_probing_again(tmp_path, fresh, monkeypatch):
    monkeypatch.setattr(machine, "probe", lambda: {"bfloat16": 7e10, "float32": 1.3e11})
    (tmp_path / "machine.json").write_text(json.dumps({"another-cpu": {"dtype": "bfloat16"}}))
    assert machine.machine_dtype(tmp_path) == "float32"
    kept = json.loads((tmp_path / "machine.json").read_text())
    assert set(kept) == {"another-cpu", machine.machine_key()}  # the other machine's entry stays

    monkeypatch.setattr(machine, "_chosen", {})
    (tmp_path / "machine.json").write_text("{not json")
    assert machine.machine_dtype(tmp_path) == "float32"


def test_a_cache_that_cannot_be_written_still_gives_a_dtype(tmp_path, fresh, monkeypatch):
    monkeypatch.setattr(machine, "probe", lambda: {"bfloat16": 5e11, "float32": 1.5e11})
    blocked = tmp_path / "a-file"
    blocked.write_text("")  # the cache dir's place holds a file: nothing can be written under it, even as root
    assert machine.machine_dtype(blocked / "cache") == "bfloat16"
    assert list(tmp_path.iterdir()) == [blocked]
    monkeypatch.setattr(machine, "_chosen", {})
    assert machine.machine_dtype(tmp_path / "not-yet") == "bfloat16"
    assert not (tmp_path / "not-yet").exists()  # no cache folder is made for it


def test_auto_in_the_config_resolves_to_the_machines_dtype_and_a_set_dtype_stays(tmp_path, fresh, monkeypatch):
    monkeypatch.setattr(machine, "probe", lambda: {"bfloat16": 7e10, "float32": 1.3e11})
    cache = f"models.cache_dir={tmp_path}"
    assert load_config(None, [cache]).generation.dtype == "float32"  # the default is auto
    assert load_config(None, [cache, "generation.dtype=auto"]).generation.dtype == "float32"
    assert load_config(None, [cache, "generation.dtype=bfloat16"]).generation.dtype == "bfloat16"
    assert (tmp_path / "machine.json").is_file()
