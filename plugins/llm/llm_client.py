"""Chat LLM access for plugins: an OpenAI-compatible server or a local checkpoint.

:func:`shared_llm` returns one client per ``[llm]`` config, shared by the
scientist, the novelty judge and the LLM gibberish judge. ``[llm]`` is the
section :class:`LLMSection`; this module is no plugin of its own, so the
``scientist`` plugin declares it (sections of every installed plugin are
collected, enabled or not, so ``--set llm.model=...`` always works):

- ``endpoint = "http://..."``: the official ``openai`` client against any
  OpenAI-compatible server (vLLM, llama.cpp server, OpenAI). It retries 408,
  409, 429, 5xx, connection errors and timeouts with exponential backoff
  (0.5 s doubling up to 8 s, with jitter; a server's ``Retry-After`` wins);
  a thread pool caps the requests in flight at ``concurrency``.
- ``endpoint = "local"``: the checkpoint named by ``model`` (a seed spec such
  as ``smollm2`` or a directory), run by the ``transformers`` backend in this
  process, apart from the model under evaluation.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from string import Template
from typing import Protocol

from pydantic import Field

from acdc_engine.api import AcdcError, PluginSection, hookimpl

Message = dict[str, str]


class LLMSection(PluginSection):
    """The chat LLM of plugins `scientist`, `novelty`, `llm-gibberish` and `llm-judge` (declared by `scientist`)."""

    endpoint: str = Field(
        "local",
        description="'local' (a checkpoint run by transformers in this process) or an OpenAI-compatible "
        "base URL such as http://127.0.0.1:8000/v1.",
    )
    model: str = Field("smollm2", description="Local: a seed spec or checkpoint dir. URL: the served model name.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (URL only).")
    temperature: float = Field(0.7, ge=0, le=2, description="Sampling temperature (0 = greedy).")
    max_new_tokens: int = Field(768, ge=1, le=32768, description="Most tokens in one LLM reply.")
    timeout_s: float = Field(120.0, gt=0, description="Per-request timeout (URL only).")
    max_retries: int = Field(4, ge=0, description="Retries with exponential backoff on 429, 5xx and connection errors.")
    concurrency: int = Field(4, ge=1, description="Most requests in flight at once (URL only).")


class LLMError(AcdcError):
    """The LLM could not answer (after retries): one line naming the endpoint."""


class ChatLLM(Protocol):
    """Answers conversations; the result is the next assistant turn of each."""

    def chat(self, conversations: list[list[Message]], *, temperature: float | None = None,
             max_tokens: int | None = None, seed: int = 0) -> list[str]: ...


class OpenAIChat:
    """An OpenAI-compatible chat-completions endpoint."""

    def __init__(self, *, base_url: str, model: str, api_key: str | None, temperature: float, max_tokens: int,
                 timeout_s: float, max_retries: int, concurrency: int) -> None:
        import openai

        self.base_url, self.model = base_url, model
        self.temperature, self.max_tokens = temperature, max_tokens
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout_s,
                                    max_retries=max_retries)
        self.pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="acdc-llm")

    def complete(self, messages: list[Message], *, temperature: float | None = None, max_tokens: int | None = None,
                 seed: int = 0) -> str:
        """One chat completion (retried by the client); raises :class:`LLMError`."""
        import openai

        try:
            reply = self.client.chat.completions.create(
                model=self.model, messages=messages, seed=seed,
                temperature=self.temperature if temperature is None else temperature,
                max_tokens=max_tokens or self.max_tokens,
            )
        except openai.APIStatusError as exc:
            detail = re.sub(r"^Error code: \d+ - ", "", _one_line(exc.message))
            raise LLMError(f"LLM {self.base_url}: HTTP {exc.status_code}: {detail}") from None
        except openai.APIError as exc:
            raise LLMError(f"LLM {self.base_url}: {type(exc).__name__}: {_one_line(str(exc))}") from None
        except ValueError as exc:  # a 200 whose body is not JSON (a proxy's HTML page, say)
            raise LLMError(f"LLM {self.base_url}: the reply is not JSON ({_one_line(str(exc))[:80]}); is this "
                           "an OpenAI-compatible endpoint?") from None
        return _reply_text(self.base_url, reply)

    def chat(self, conversations, *, temperature=None, max_tokens=None, seed=0):
        jobs = [self.pool.submit(self.complete, m, temperature=temperature, max_tokens=max_tokens, seed=seed + i)
                for i, m in enumerate(conversations)]
        return [job.result() for job in jobs]

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.client.close()


class LocalChat:
    """A local checkpoint answering through the transformers backend."""

    def __init__(self, model_dir: Path, *, temperature: float, max_tokens: int, dtype: str = "bfloat16") -> None:
        from ..generation.transformers_backend import TransformersBackend

        self.temperature, self.max_tokens = temperature, max_tokens
        self.backend = TransformersBackend(model_dir, dtype=dtype, batch_size=8)

    def chat(self, conversations, *, temperature=None, max_tokens=None, seed=0):
        return self.backend.chat(conversations, max_new_tokens=max_tokens or self.max_tokens,
                                 temperature=self.temperature if temperature is None else temperature, seed=seed)

    def close(self) -> None:
        self.backend.close()


def _reply_text(base_url: str, reply) -> str:
    """The assistant's text of a chat completion; one line if the reply is not one (HTML, another JSON)."""
    if isinstance(reply, (str, bytes)):  # the client hands over a body it could not read as JSON
        raise LLMError(f"LLM {base_url}: the reply is not a chat completion but {_one_line(str(reply))[:80]!r}; "
                       "is this an OpenAI-compatible endpoint?")
    choices = getattr(reply, "choices", None)
    if not choices:
        raise LLMError(f"LLM {base_url}: reply without choices")
    try:
        content = choices[0].message.content
    except (AttributeError, IndexError, KeyError, TypeError):
        raise LLMError(f"LLM {base_url}: the reply is not a chat completion (its choices are "
                       f"{_one_line(repr(choices))[:80]}); is this an OpenAI-compatible endpoint?") from None
    if content is not None and not isinstance(content, str):
        raise LLMError(f"LLM {base_url}: the reply's content is not text ({type(content).__name__})")
    return content or ""


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:300]


def make_llm(llm_config, *, hook=None, cache_dir: str = "~/.cache/acdc-engine", dtype: str = "bfloat16") -> ChatLLM:
    """The client for an ``[llm]`` config; ``hook`` resolves a local model spec."""
    if llm_config.endpoint == "local":
        from acdc_engine.api import resolve_seed

        model_dir = Path(llm_config.model).expanduser()
        if not (model_dir / "config.json").is_file():
            if hook is None:
                raise AcdcError(f"llm.model {llm_config.model!r} is not a checkpoint directory")
            model_dir = resolve_seed(hook, llm_config.model, Path(cache_dir).expanduser())
        return LocalChat(model_dir, temperature=llm_config.temperature, max_tokens=llm_config.max_new_tokens,
                         dtype=dtype)
    if not llm_config.endpoint.startswith(("http://", "https://")):
        raise AcdcError(f"llm.endpoint {llm_config.endpoint!r}: expected 'local' or an http(s) URL")
    return OpenAIChat(
        base_url=llm_config.endpoint, model=llm_config.model, api_key=os.environ.get(llm_config.api_key_env),
        temperature=llm_config.temperature, max_tokens=llm_config.max_new_tokens, timeout_s=llm_config.timeout_s,
        max_retries=llm_config.max_retries, concurrency=llm_config.concurrency,
    )


_shared: dict[tuple, ChatLLM] = {}


class LLMPlugin:
    """Base of the built-in plugins that ask the ``[llm]`` model: one instance per plugin context, handed
    the run's config and the hook relay by ``acdc_configure``."""

    config = hook = None

    @hookimpl
    def acdc_configure(self, config, hook):
        self.config, self.hook = config, hook


def shared_llm(config, hook) -> ChatLLM:
    """One client per run config's ``[llm]`` section, built on first use and then shared."""
    section = config.section("llm")
    key = (section, config.models.cache_dir, config.generation.dtype)
    if key not in _shared:
        _shared[key] = make_llm(section, hook=hook, cache_dir=config.models.cache_dir,
                                dtype=config.generation.dtype)
    return _shared[key]


def plugin_prompt(name: str, **fields) -> str:
    """The prompt template ``plugins/llm/prompts/<name>.md`` with ``$fields`` filled in."""
    text = resources.files(__package__).joinpath("prompts", f"{name}.md").read_text()
    return Template(text).safe_substitute(fields)


def ask_once(config, hook, question: str, *, max_tokens: int = 64) -> str | None:
    """The shared LLM's greedy reply to one question, or ``None`` if it cannot be reached."""
    try:
        return shared_llm(config, hook).chat([[{"role": "user", "content": question}]], temperature=0.0,
                                             max_tokens=max_tokens)[0]
    except LLMError:
        return None
