"""``acdc-lm-eval``: lm-evaluation-harness's own command line, with acdc-engine's model registered.

lm-eval 0.4.13 finds a model name only in its registry, which holds its own models
and whatever an imported module registered: it has no entry-point group or
``--include`` for outside models (EleutherAI/lm-evaluation-harness issue 3282,
pull request 3672), so the ``lm-eval`` script itself cannot know ``acdc-engine``.
This command imports :mod:`acdc_engine.evaluation.lm_eval_adapter` (which registers
``AcdcLM`` as ``acdc-engine``) and hands every argument to lm-eval's own
``cli_evaluate``: the same subcommands, options, output files and tables::

    acdc-lm-eval run --model acdc-engine --model_args pretrained=CHECKPOINT_DIR --tasks arc_easy
    acdc-lm-eval run --model acdc-engine --model_args run=RUN_DIR,model=m12 --tasks my_mc --include_path my_tasks/

From Python, importing :mod:`acdc_engine.evaluation.lm_eval_adapter` is enough:
``lm_eval.simple_evaluate(model="acdc-engine", model_args="pretrained=DIR", tasks=[...])``.
An acdc-engine error (bad model_args, a missing checkpoint) is one line on stderr with its exit status.
"""

from __future__ import annotations

import sys

from ..errors import AcdcError


def main() -> None:
    try:
        from . import lm_eval_adapter  # noqa: F401  registers the model class as "acdc-engine"
        from lm_eval.__main__ import cli_evaluate

        cli_evaluate()
    except AcdcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
