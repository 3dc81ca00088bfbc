"""The OpenAI-compatible client against a real HTTP server on 127.0.0.1: replies, retries, timeouts, limits."""

from __future__ import annotations

import time

import pytest

from acdc_engine.config import load_config
from acdc_engine.errors import AcdcError
from acdc_engine.plugins.llm.llm_client import LLMError, OpenAIChat, make_llm


def client(url, **kw):
    args = dict(base_url=url, model="m", api_key="k", temperature=0.5, max_tokens=32, timeout_s=5.0,
                max_retries=3, concurrency=2)
    return OpenAIChat(**{**args, **kw})


def test_canned_reply_and_request_fields(chat_server):
    server = chat_server("hello there")
    llm = client(server.url)
    assert llm.chat([[{"role": "user", "content": "hi"}]], seed=7) == ["hello there"]
    body = server.requests[0]
    assert body["model"] == "m" and body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["temperature"] == 0.5 and body["max_tokens"] == 32 and body["seed"] == 7


def test_server_errors_are_retried_then_succeed(chat_server):
    server = chat_server(500, 503, 429, "finally")
    assert client(server.url).complete([{"role": "user", "content": "q"}]) == "finally"
    assert len(server.requests) == 4


def test_retries_run_out_with_one_line_error(chat_server):
    server = chat_server(500)
    with pytest.raises(LLMError) as err:
        client(server.url, max_retries=2).complete([{"role": "user", "content": "q"}])
    assert len(server.requests) == 3
    assert str(err.value) == f"LLM {server.url}: HTTP 500: canned 500" and isinstance(err.value, AcdcError)


def test_client_errors_are_not_retried(chat_server):
    server = chat_server(401)
    with pytest.raises(LLMError, match="HTTP 401"):
        client(server.url).complete([{"role": "user", "content": "q"}])
    assert len(server.requests) == 1


def test_slow_reply_times_out(chat_server):
    server = chat_server(("slow", 2.0, "too late"))
    start = time.monotonic()
    with pytest.raises(LLMError, match="APITimeoutError"):
        client(server.url, timeout_s=0.3, max_retries=1).complete([{"role": "user", "content": "q"}])
    assert len(server.requests) == 2  # the timeout was retried once
    assert time.monotonic() - start < 1.9


def test_concurrency_is_capped(chat_server):
    server = chat_server(("slow", 0.2, "ok"))
    replies = client(server.url, concurrency=2).chat([[{"role": "user", "content": str(i)}] for i in range(6)])
    assert replies == ["ok"] * 6 and server.max_in_flight == 2
    assert [r["seed"] for r in server.requests] and sorted(r["seed"] for r in server.requests) == list(range(6))


def test_unreachable_endpoint_is_named():
    llm = client("http://127.0.0.1:9/v1", max_retries=0, timeout_s=1.0)
    with pytest.raises(LLMError, match=r"LLM http://127.0.0.1:9/v1: APIConnectionError"):
        llm.complete([{"role": "user", "content": "q"}])


def test_make_llm_reads_the_key_from_the_named_variable(chat_server, monkeypatch):
    server = chat_server("ok")
    monkeypatch.setenv("MY_KEY", "secret-123")
    config = load_config(None, [f"llm.endpoint={server.url}", "llm.api_key_env=MY_KEY", "llm.model=served"])
    assert make_llm(config.llm).chat([[{"role": "user", "content": "q"}]]) == ["ok"]
    assert server.requests[0]["model"] == "served"


def test_bad_endpoint_is_one_line_error():
    config = load_config(None, ["llm.endpoint=ftp://x"])
    with pytest.raises(AcdcError, match="llm.endpoint 'ftp://x': expected 'local' or an http"):
        make_llm(config.llm)
