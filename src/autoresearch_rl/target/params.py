"""A configuration of constants written into a train.py: how a configuration-space agent's proposal
(TPE, CMA-ES: `{name: value}` against the base file) becomes the code that runs.

Kept apart from the agents so that materialising a candidate never imports Optuna.
"""

from __future__ import annotations

from typing import Any

from autoresearch_rl.target.edits import EditError, knobs_of, parse_source, replace_constant
from autoresearch_rl.target.knobs import constraints_hold


def apply_params(base_source: str, params: dict[str, Any]) -> tuple[str, str]:
    """The base train.py with `params` set; and a description naming the constants that differ from the base."""
    module = parse_source(base_source)
    knobs = knobs_of(module)
    changed = []
    for name, value in params.items():
        knob = knobs.get(name)
        if knob is None:
            raise EditError(f"no constant {name} in the base train.py")
        if value != knob.value:
            module = replace_constant(module, name, value)
            changed.append(f"{name}={value!r}")
    final = knobs_of(module)
    for name in params:
        if not constraints_hold(final, name, final[name].value):
            raise EditError(f"{name}={final[name].value!r} breaks a 'divides' relation of this train.py; not run")
    return module.code, "config: " + (", ".join(changed) if changed else "the base configuration")
