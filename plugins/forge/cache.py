"""The cache of forged experts: where an expert of given inputs lives, and :class:`Forge`, which makes or
finds the experts of one base."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from acdc_engine.api import check_chat_template, file_digest, resolve_seed
from .data import (
    REPLAY_FORMAT,
    Example,
    capabilities,
    check_capabilities,
    families,
    generate_replies,
    held_out,
    instructions,
    replay_prompts,
    replay_records,
    task_examples,
    write_atomic,
)
from .delta import DELTA, rebuild, write_delta, write_expert
from .manifest import FORGED_DIR, MANIFEST, read_manifest, write_manifest
from .phases import Phase, prefixed, quiet
from .training import ForgeRecipe, train

#: The form of an expert's files, part of its cache key: 2 since its weights are written from the delta file
#: beside them (:mod:`.delta`); 1 merged the LoRA with peft, a few bits off in every adapted weight.
EXPERT_FORMAT = 2
#: The deltas that ship with the plugin, each named like the expert directory it rebuilds.
SHIPPED_DIR = Path(__file__).parent / "deltas"


@dataclass(frozen=True)
class Forged:
    """A forged expert's directory; ``cached`` if an earlier forge made it, ``shipped`` if it was rebuilt now
    from the delta shipped with the plugin."""

    capability: str
    path: Path
    cached: bool
    seconds: float
    shipped: bool = False


def expert_dir(cache_dir: Path, base_spec: str, base_digest: str, capability: str, recipe: ForgeRecipe,
               replay_key: str, data_key: str) -> Path:
    """Where the expert of these inputs lives: named by base, capability and a hash of everything
    (``data_key``: of its training families and the held-out instructions they must avoid)."""
    key = hashlib.sha256(json.dumps([EXPERT_FORMAT, base_spec, base_digest, capability, asdict(recipe),
                                     replay_key, data_key])
                         .encode()).hexdigest()[:10]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", base_spec.rstrip("/").rsplit("/", 1)[-1]).strip("._") or "base"
    return Path(cache_dir).expanduser() / FORGED_DIR / f"{slug}-{capability}-{key}"



def install(tmp: Path, final: Path) -> None:
    """Moves a complete expert directory into place (replacing an older one)."""
    old = None
    if final.exists():
        old = final.with_name(f".old-{final.name}-{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)



class Forge:
    """Forges experts of one base; they share its replay data. Its work outside the training steps (the
    task instances it builds here, the replay's scoring, each expert's training data, protected directions
    and writing) shows as ``phase``s (:func:`~.phases.shown_on` a progress display)."""

    def __init__(self, hook, config, *, base: str | None = None, recipe: ForgeRecipe = ForgeRecipe(),
                 phase: Phase = quiet) -> None:
        self.hook, self.config, self.recipe, self.phase = hook, config, recipe, phase
        self.cache_dir = Path(config.models.cache_dir).expanduser()
        self.base_spec = base or config.models.base
        self.base_dir = resolve_seed(hook, self.base_spec, self.cache_dir)
        check_chat_template(self.base_spec, self.base_dir)  # its replay answers and training turns are chats
        self.base_digest = file_digest(self.base_dir / "model.safetensors")
        self.held = held_out(hook, config.sandbox, capabilities(hook), phase)  # never trained on, nor replayed
        self.held_instructions = instructions(self.held)
        self.replay_prompts = replay_prompts(hook, config.sandbox, exclude=self.held_instructions, phase=phase)
        gen = config.generation
        self.replay_key = hashlib.sha256(json.dumps([REPLAY_FORMAT, self.base_digest, gen.backend,
                                                     gen.max_new_tokens, [(r.capability, r.prompt)
                                                                          for r in self.replay_prompts]])
                                         .encode()).hexdigest()[:12]
        self.replay_file = self.cache_dir / FORGED_DIR / f"replay-{self.replay_key}.json"

    def replay(self) -> list[dict]:
        """The base's replies to the replay prompts: cached, or generated now (a phase counting answers,
        then one scoring them)."""
        if not self.replay_file.is_file():
            with self.phase("replay: the base's answers", len(self.replay_prompts)) as advance:
                replies = generate_replies(self.hook, self.config, self.base_dir, self.replay_prompts, advance)
            records = replay_records(self.hook, self.config, self.base_dir, self.replay_prompts, replies, self.phase)
            write_atomic(self.replay_file, json.dumps(records, indent=0))
        return json.loads(self.replay_file.read_text())

    def path(self, capability: str) -> Path:
        """The expert's directory; another recipe, base, replay or training data (the families'
        instances, with their working) gives another one."""
        train = [spec.digest for spec in families(self.hook, capability, self.recipe.difficulties, self.recipe.train_per_family,
                                                  "train", self.recipe.seed)]
        data_key = hashlib.sha256(json.dumps([train, sorted(self.held_instructions)]).encode()).hexdigest()
        return expert_dir(self.cache_dir, self.base_spec, self.base_digest, capability, self.recipe, self.replay_key,
                          data_key)

    def cached(self, capability: str) -> Forged | None:
        path = self.path(capability)
        if not (path / MANIFEST).is_file():
            return None
        return Forged(capability, path, True, read_manifest(path)["seconds"])

    def shipped(self, capability: str) -> Path | None:
        """The delta shipped with the plugin that rebuilds exactly this expert (same base, recipe, replay and
        training data), if there is one."""
        delta = SHIPPED_DIR / f"{self.path(capability).name}.safetensors"
        return delta if delta.is_file() else None

    def forge(self, capability: str, *, force: bool = False, on_step=None) -> Forged:
        """The expert of ``capability``: from the cache, rebuilt from its shipped delta, or trained, and then
        saved (atomically) with its delta file.

        Its time counts from the training data to the installed directory
        (the replay data, shared by all experts, is made before). ``on_step(step, loss)`` follows
        each training step; the rest shows as phases named after ``capability``.
        """
        check_capabilities(self.hook, [capability])
        if not force and (found := self.cached(capability)):
            return found
        final = self.path(capability)
        started = time.monotonic()
        phase = prefixed(self.phase, f"{capability}: ")
        if not force and (delta := self.shipped(capability)):
            self._install(final, lambda tmp: rebuild(delta, self.base_dir, tmp, phase))
            return Forged(capability, final, False, time.monotonic() - started, shipped=True)
        records = self.replay()
        tasks = task_examples(self.hook, capability, self.recipe, self.config.sandbox, self.held_instructions, phase)
        others = [r for r in records if r["capability"] != capability]
        protected = [Example(r["prompt"], r["reply"], r["ended"]) for r in others]
        replayed = [e for e, r in zip(protected, others)
                    if r["score"] is None or r["score"] > 0 or not self.recipe.replay_solved_only]
        factors = train(self.base_dir, tasks, replayed, self.recipe, on_step, protected, phase)

        def write(tmp: Path) -> None:
            write_expert(self.base_dir, factors, tmp, phase)
            manifest = dict(base=self.base_spec, base_digest=self.base_digest, capability=capability,
                            recipe=asdict(self.recipe), task_examples=len(tasks), replay_examples=len(replayed),
                            seconds=round(time.monotonic() - started, 1), created=time.time())
            write_delta(tmp / DELTA, factors, manifest, file_digest(tmp / "model.safetensors"))
            write_manifest(tmp, **manifest)

        self._install(final, write)
        return Forged(capability, final, False, time.monotonic() - started)

    @staticmethod
    def _install(final: Path, write) -> None:
        """Runs ``write(tmp)`` into a fresh directory beside ``final`` and moves it into place; nothing is left
        half-written if it fails."""
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}-", dir=final.parent))
        try:
            write(tmp)
            install(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
