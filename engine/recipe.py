"""A model's genome: the recipe that rebuilds its weights exactly."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


def _freeze(value: Any) -> Any:
    return tuple(_freeze(v) for v in value) if isinstance(value, (list, tuple)) else value


def _frozen(params: dict[str, Any] | None) -> tuple[tuple[str, Any], ...]:
    """Parameters as sorted (key, value) pairs, lists (nested ones too, e.g. per-block weights) as tuples."""
    return tuple(sorted((k, _freeze(v)) for k, v in (params or {}).items()))


@dataclass(frozen=True)
class Recipe:
    """How to build one model: small, hashable, and enough to rebuild the weights.

    A seed model has ``seed_spec`` set and nothing else. Any other model names
    its ``parents`` (model ids), the crossover and mutation operators with their
    parameters, and the integer ``seed`` of its mutation noise.
    """

    parents: tuple[str, ...] = ()
    crossover: str | None = None
    crossover_params: tuple[tuple[str, Any], ...] = field(default=())
    mutation: str | None = None
    mutation_params: tuple[tuple[str, Any], ...] = field(default=())
    seed: int = 0
    seed_spec: str | None = None

    @classmethod
    def make(cls, *, crossover_params: dict | None = None, mutation_params: dict | None = None, **kw) -> Recipe:
        """Builds a recipe from plain dicts of parameters."""
        return cls(crossover_params=_frozen(crossover_params), mutation_params=_frozen(mutation_params), **kw)

    @property
    def is_seed(self) -> bool:
        return self.seed_spec is not None

    def to_json(self) -> str:
        return json.dumps(
            {
                "parents": list(self.parents),
                "crossover": self.crossover,
                "crossover_params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.crossover_params},
                "mutation": self.mutation,
                "mutation_params": {k: list(v) if isinstance(v, tuple) else v for k, v in self.mutation_params},
                "seed": self.seed,
                "seed_spec": self.seed_spec,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        d = json.loads(text)
        d["parents"] = tuple(d["parents"])
        return cls.make(**d)

    def describe(self) -> str:
        """A short human-readable form, e.g. ``linear(m0001,m0003)+svd``."""
        if self.is_seed:
            return f"seed:{self.seed_spec.rstrip('/').rsplit('/', 1)[-1]}"
        text = f"{self.crossover}({','.join(self.parents)})"
        return f"{text}+{self.mutation}" if self.mutation else text
