"""Where seed models come from: ``smollm2`` (offline SmolLM2), ``local-seeds`` (local paths and Hub
ids), and GGUF files converted once to safetensors."""
