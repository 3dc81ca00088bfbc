"""Third-party progress bars never print their own lines: transformers' GGUF conversion bars are folded
into the step's own progress (plain lines off a terminal), and after ``quiet_libraries`` every library bar
is off."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from rich.console import Console


def write_tiny_gguf(path):
    """A 2-layer llama GGUF (hidden 64, a 32-token byte-level vocabulary, float32 tensors)."""
    import gguf
    import numpy as np

    w = gguf.GGUFWriter(str(path), "llama")
    h, layers, vocab, ff = 64, 2, 32, 128
    w.add_block_count(layers)
    w.add_context_length(128)
    w.add_embedding_length(h)
    w.add_feed_forward_length(ff)
    w.add_head_count(4)
    w.add_head_count_kv(2)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(vocab)
    w.add_tokenizer_model("gpt2")
    w.add_token_list([chr(ord("a") + i) for i in range(26)] + ["ab"] + [str(i) for i in range(vocab - 27)])
    w.add_token_types([1] * vocab)
    w.add_token_scores([0.0] * vocab)
    w.add_token_merges(["a b"])
    w.add_bos_token_id(0)
    w.add_eos_token_id(1)
    rng = np.random.default_rng(0)
    shapes = {"token_embd": (vocab, h), "output_norm": (h,)}
    for i in range(layers):
        shapes |= {f"blk.{i}.{n}": s for n, s in [
            ("attn_norm", (h,)), ("ffn_norm", (h,)), ("attn_q", (h, h)), ("attn_k", (32, h)), ("attn_v", (32, h)),
            ("attn_output", (h, h)), ("ffn_gate", (ff, h)), ("ffn_up", (ff, h)), ("ffn_down", (h, ff))]}
    for name, shape in shapes.items():
        w.add_tensor(f"{name}.weight", rng.standard_normal(shape).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_quiet_libraries_turns_the_library_bars_off(capfd):
    from transformers.utils import logging as hf_logging
    from tqdm.auto import tqdm

    from acdc_engine.ui.commands import quiet_libraries

    quiet_libraries()
    assert not hf_logging.is_progress_bar_enabled()
    for _ in tqdm(range(5), desc="Converting and de-quantizing GGUF tensors..."):
        pass
    for _ in hf_logging.tqdm(range(5), desc="Loading weights"):
        pass
    out, err = capfd.readouterr()
    assert out == err == ""


def test_a_bar_inside_folded_bars_advances_the_steps_own_progress(capfd):
    from tqdm import tqdm

    from acdc_engine.ui.progress import TickingProgress, folded_bars

    buf = io.StringIO()
    with TickingProgress(console=Console(file=buf, width=80)) as progress:
        with folded_bars("gen 0: converting", progress=progress):
            bar = tqdm(total=4, desc="Writing model shards")
            bar.update(3)
            bar.close()
    assert buf.getvalue().splitlines() == [
        "gen 0: converting: Writing model shards (4) ...",
        buf.getvalue().splitlines()[1]]
    assert buf.getvalue().splitlines()[1].startswith("gen 0: converting: Writing model shards: 3/4, ")
    assert capfd.readouterr() == ("", "")  # tqdm itself printed nothing


def test_a_gguf_conversion_prints_no_foreign_bar(tmp_path):
    gguf = write_tiny_gguf(tmp_path / "tiny.gguf")
    code = textwrap.dedent(f"""
        from pathlib import Path
        from acdc_engine.plugins.seed_models.gguf_conversion import convert_gguf
        convert_gguf(Path({str(gguf)!r}), Path({str(tmp_path / "out")!r}))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "model.safetensors").is_file()
    lines = (done.stdout + done.stderr).splitlines()
    assert "it/s" not in done.stderr and "%|" not in done.stderr, done.stderr  # no tqdm bar
    step = "converting tiny.gguf to safetensors (once)"
    assert lines[0] == f"{step} (3) ..." and lines[-1].startswith(f"{step}: 3/3, ")
    assert f"{step}: Converting and de-quantizing GGUF tensors (20) ..." in lines  # folded, under its step
