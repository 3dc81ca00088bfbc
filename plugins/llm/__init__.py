"""The language models that plugins consult: the chat LLM client (``[llm]``) with its prompts, and the
plugins built on it (``llm-judge``, ``llm-gibberish``, ``novelty``), plus sentence ``embeddings``."""
