"""Built-in plugin ``forge`` (always on). Forged seed experts: a base model fine-tuned briefly on one capability.

AC/DC starts from several experts of one base, and only one SmolLM2
checkpoint exists offline. ``forge`` makes more: a short LoRA fine-tune
(peft) of the base on the procedural generator's task families of one
capability, with their correct answers as targets (``Answer: ...``, the
format the instructions ask for), mixed with *replay*: the base's own greedy
answers to general prompts and to the other capabilities' tasks that it
solves, generated once per base and cached, so that the expert keeps what the
base could do; and (``protect_energy``) the adapters' weight change is
kept orthogonal to the main input directions of those other capabilities' texts.
The LoRA's factors are kept (``delta.safetensors``) and applied to the base's
weights exactly (:mod:`.delta`), and the checkpoint written in the base's
exact layout (tensor names, shapes, dtypes; config and tokenizer files
copied), atomically, to ``<cache_dir>/forged/<base>-<capability>-<key>``,
where the key hashes the base's weights, the capability, the recipe and the
training data. A ``forge.json`` manifest beside the weights lets the
plugin resolve ``forged:<base>`` seed specs (:mod:`.seeds`). The default experts of
SmolLM2 ship as delta files in ``deltas/``: an expert missing from the cache whose
delta ships is rebuilt from it, bit for bit, instead of trained.

:func:`compare` scores the base and the experts on held-out instances of
every capability (distinct instructions that are never trained on nor
replayed) with the run's backend in float32, answer extraction and the
families' own scorers.

Modules: :mod:`.data` (task families, held-out split, replay), :mod:`.training`
(LoRA fine-tune), :mod:`.delta` (its factors, applied exactly; delta files), :mod:`.protect` (protected directions),
:mod:`.manifest` and :mod:`.cache` (the cache, :class:`~.cache.Forge`),
:mod:`.compare` (held-out comparison), :mod:`.seeds` (``forged:`` specs), :mod:`.phases` (each step of
the work shown as progress) and :mod:`.command` (``acdc-engine forge``, the first run's forging).
"""

from __future__ import annotations

from pydantic import Field

from acdc_engine.api import PluginSection, hookimpl


class ForgeSection(PluginSection):
    """Forged seed experts (plugin `forge`, always on)."""

    renamed = {"models.forge_missing": "forge_missing"}

    forge_missing: bool = Field(True, description="Before a run, forge the default experts of a 'forged:BASE' seed "
                                "group that has none yet (once: they are cached).")


@hookimpl
def acdc_config_sections():
    return {"forge": ForgeSection}


@hookimpl
def acdc_resolve_seed(spec, cache_dir):
    from .seeds import resolve

    return resolve(spec, cache_dir)


@hookimpl
def acdc_commands():
    from .command import forge

    return [forge]


@hookimpl
def acdc_prepare_run(config, hook):
    """The first run of a ``forged:BASE`` seed group forges its default experts (``forge.forge_missing``)."""
    if config.section("forge").forge_missing:
        from .command import forge_missing

        forge_missing(config, hook)
