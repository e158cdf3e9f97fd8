"""A configuration written into a train.py: how a configuration-space agent's proposal (TPE, CMA-ES,
the meta-trained scorer: `{name: value}` against the base file) becomes the code that runs.

Constants are set by name. A key `@operator` (STRUCTURAL) picks a variant of a structural operator
(`@activation: "swiglu"`, `@qk_norm: "off"`): the operators rewrite the base first, in their fixed
order, then the constants are set, so a configuration is absolute (it names its code whatever the
incumbent) and the same dict always gives the same file.

Kept apart from the agents so that materialising a candidate never imports Optuna.
"""

from __future__ import annotations

from typing import Any

from autoresearch_rl.target.edits import EditError, knobs_of, parse_source, replace_constant
from autoresearch_rl.target.knobs import constraints_hold

STRUCTURAL = "@"  # prefix of a structural operator's key in a configuration


def apply_params(base_source: str, params: dict[str, Any]) -> tuple[str, str]:
    """The base train.py with `params` set; and a description naming what differs from the base."""
    from autoresearch_rl.target.structural import structural_operators

    module = parse_source(base_source)
    changed = []
    operators = {STRUCTURAL + op.name: op for op in structural_operators()}
    unknown = [key for key in params if key.startswith(STRUCTURAL) and key not in operators]
    if unknown:
        raise EditError(f"no structural operator {unknown[0][1:]!r}; choose among {', '.join(sorted(operators))}")
    for key, op in operators.items():
        if key in params and op.current(module) != params[key]:
            module, note = op.apply(module, str(params[key]))  # EditError when the variant does not apply here
            changed.append(note)
    knobs = knobs_of(module)
    for name, value in params.items():
        if name.startswith(STRUCTURAL):
            continue
        knob = knobs.get(name)
        if knob is None:
            raise EditError(f"no constant {name} in the base train.py")
        if value != knob.value:
            module = replace_constant(module, name, value)
            changed.append(f"{name}={value!r}")
    final = knobs_of(module)
    for name in params:
        if not name.startswith(STRUCTURAL) and not constraints_hold(final, name, final[name].value):
            raise EditError(f"{name}={final[name].value!r} breaks a 'divides' relation of this train.py; not run")
    return module.code, "config: " + (", ".join(changed) if changed else "the base configuration")
