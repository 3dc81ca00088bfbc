"""Shared fixtures: the real SmolLM2 checkpoint and tiny llama models built here."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

from acdc_engine.config import load_config
from acdc_engine.plugin_manager import PluginContext, build_plugin_manager
from acdc_engine.plugins.seed_models import smollm2

os.environ.setdefault("HF_HUB_OFFLINE", "1")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The real SmolLM2-135M-Instruct checkpoint, converted once into the user cache."""
    return smollm2.acdc_resolve_seed(spec="smollm2", cache_dir=Path("~/.cache/acdc-engine").expanduser())


def make_tiny_model(out_dir: Path, tokenizer_dir: Path, *, hidden: int = 64, seed: int = 0) -> Path:
    """A 2-layer llama with the SmolLM2 tokenizer and random weights, saved as a checkpoint."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=49152, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2,
    )
    LlamaForCausalLM(config).save_pretrained(out_dir)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).exists():
            shutil.copy(tokenizer_dir / name, out_dir / name)
    return out_dir


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, smollm2_dir) -> dict[str, Path]:
    """Two tiny seeds of one architecture (different weights) and one of another size."""
    root = tmp_path_factory.mktemp("tiny")
    return {
        "a": make_tiny_model(root / "a", smollm2_dir, seed=1),
        "b": make_tiny_model(root / "b", smollm2_dir, seed=2),
        "wide": make_tiny_model(root / "wide", smollm2_dir, hidden=96, seed=3),
    }


def tiny_overrides(tiny_models, tmp_path, **extra) -> list[str]:
    """Config overrides for a seconds-long run on tiny models."""
    a, b = tiny_models["a"], tiny_models["b"]
    values = {
        "run.generations": 2, "run.output_dir": str(tmp_path / "runs"),
        "models.seeds": [str(a), str(b)], "models.base": str(a),
        "evolution.archive_size": 3, "evolution.initial_population": 3, "evolution.offspring_per_generation": 2,
        "merge.keep_rank": 16, "merge.mutation_scale": "absolute", "merge.mutation_std": 0.25,
        "tasks.initial_families": 6, "tasks.instances_per_family": 1,
        "tasks.active_cap": 8, "tasks.adapt_every": 1, "tasks.new_per_adaptation": 3,
        "generation.dtype": "float32", "generation.max_new_tokens": 4, "sandbox.timeout_s": 5.0, **extra,
    }
    return [f"{k}={v!r}" if not isinstance(v, str) else f"{k}={v}" for k, v in values.items()]


#: Prompts on which a compiled backend's greedy answers are compared with the transformers backend's.
BACKEND_PROMPTS = ["What is 2 + 2?", "Name a colour.", "Reverse 'abc'.",
                   "Write a haiku about the sea, please, in English.", "x",
                   "List three fruits and say which one is the sweetest, with a reason for each of them."]


def check_greedy_answers(ref, backend, weights_files) -> None:
    """After each of ``weights_files`` is loaded into both, ``backend`` answers greedily as ``ref`` (the
    transformers backend in float32) does, tells its progress in full and counts the same tokens."""
    for weights in weights_files:
        ref.load_weights(weights)
        backend.load_weights(weights)
        before = backend.generated_tokens, ref.generated_tokens
        told = []
        got = backend.generate(BACKEND_PROMPTS, max_new_tokens=12, on_batch=told.append)
        assert got == ref.generate(BACKEND_PROMPTS, max_new_tokens=12) and sum(told) == len(BACKEND_PROMPTS)
        assert backend.generated_tokens - before[0] == ref.generated_tokens - before[1]


def check_seeded_sampling(backend) -> None:
    """Sampled answers repeat with their seed, change with another, and differ from greedy ones."""
    one = backend.generate(BACKEND_PROMPTS, max_new_tokens=10, temperature=1.0, seed=3)
    assert backend.generate(BACKEND_PROMPTS, max_new_tokens=10, temperature=1.0, seed=3) == one
    assert backend.generate(BACKEND_PROMPTS, max_new_tokens=10, temperature=1.0, seed=4) != one
    assert one != backend.generate(BACKEND_PROMPTS, max_new_tokens=10)


def check_real_seed_answers(smollm2_dir: Path, make_backend) -> None:
    """``make_backend(model_dir)`` answers the real seed greedily as the transformers backend in float32."""
    from acdc_engine.plugins.generation.transformers_backend import TransformersBackend

    prompts = ["What is 17 + 25?", "Reverse the string 'hello'.", "What is the capital of Italy?",
               "Write a Python function that returns the square of x."]
    ref = TransformersBackend(smollm2_dir, dtype="float32")
    want = ref.generate(prompts, max_new_tokens=16)
    ref.close()
    backend = make_backend(smollm2_dir)
    try:
        assert backend.generate(prompts, max_new_tokens=16) == want
    finally:
        backend.close()


@pytest.fixture
def tiny_config(tiny_models, tmp_path):
    """A validated config for a tiny run; call with extra overrides."""
    def make(**extra):
        return load_config(None, tiny_overrides(tiny_models, tmp_path, **extra))
    return make


@pytest.fixture
def plugin_manager():
    return build_plugin_manager(["merge", "taskgen"])


class ChatServer:
    """A real OpenAI-compatible HTTP server on 127.0.0.1 that serves canned chat completions.

    ``plan`` is a list of steps used in order, then the last one again; a step
    is a reply text, an ``int`` HTTP status to fail with, a ``("slow", seconds,
    text)`` tuple, or a callable ``messages -> text``. Every request body is kept
    in ``requests``; ``max_in_flight`` counts concurrent requests.
    """

    def __init__(self, plan):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.plan, self.requests, self.in_flight, self.max_in_flight = list(plan), [], 0, 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.requests.append(body)
                    step = owner.plan[min(len(owner.requests), len(owner.plan)) - 1]
                    owner.in_flight += 1
                    owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
                self.counted = True
                try:
                    self.answer(step, body)
                finally:
                    self.done()

            def done(self):
                """The request leaves the in-flight count once its reply is ready, before it is written: a
                client may send its next request as soon as it has read this one's reply."""
                if self.counted:
                    self.counted = False
                    with owner.lock:
                        owner.in_flight -= 1

            def answer(self, step, body):
                if isinstance(step, int):
                    return self.send(step, {"error": {"message": f"canned {step}"}}, {"retry-after-ms": "20"})
                if isinstance(step, tuple):
                    time.sleep(step[1])
                    step = step[2]
                text = step(body["messages"]) if callable(step) else step
                self.send(200, {"id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                                "choices": [{"index": 0, "finish_reason": "stop",
                                             "message": {"role": "assistant", "content": text}}],
                                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

            def send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.done()
                try:
                    self.send_response(status)
                    for k, v in {"Content-Type": "application/json", "Content-Length": str(len(data)),
                                 **(headers or {})}.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    """Starts :class:`ChatServer` with a plan; every server is shut down after the test."""
    servers = []

    def start(*plan):
        servers.append(ChatServer(plan))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def run_on_store(config, store, extra=()):
    """A whole run in this process on an open run store (left open), inside a plugin context of its own;
    returns the finished loop."""
    from acdc_engine.run.loop import Coevolution

    with PluginContext(config, extra=list(extra)) as plugins:
        evo = Coevolution(config, store, plugins)
        try:
            evo.run()
        finally:
            evo.close()
    return evo


def run_in_process(config, run_dir, extra=(), *, resume=False):
    """A whole run in this process on a fresh (or, with ``resume``, the existing)
    run store; returns the finished loop."""
    from acdc_engine.store import RunStore

    store = RunStore.open(run_dir, writer=True) if resume else RunStore.create(run_dir, config.model_dump_json())
    try:
        return run_on_store(config, store, extra)
    finally:
        store.close()
