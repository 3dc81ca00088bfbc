"""Generation backends (hook ``acdc_make_backend``, ``generation.backend``): ``transformers`` (the default), ``ctranslate2``
and ``vllm``."""
