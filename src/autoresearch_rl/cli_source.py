"""The train.py a command works on (the template or --source, checked to compile), its action space, the
device its candidates will train on; and the commands that show that space (`arl edits`, `arl apply`)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from autoresearch_rl.cli_common import console
from autoresearch_rl.errors import UserError


def candidate_device(preset_device: str, gpus_per_worker: float = 0.0) -> str:
    """The device type candidates will train on ("cpu" or "cuda"), as the frozen runtime will pick it."""
    wanted = os.environ.get("ARL_DEVICE") or preset_device
    if wanted == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() or gpus_per_worker > 0 else "cpu"
    return wanted.split(":")[0]


def _read_source(path: str | None) -> str:
    if path is None:
        from autoresearch_rl.target import template_source

        return template_source()
    file = Path(path)
    if not file.is_file():
        raise UserError(f"--source {file} does not exist; pass the path of a train.py")
    source = file.read_text()
    try:
        compile(source, str(file), "exec")
    except SyntaxError as exc:
        raise UserError(f"{file} does not compile (line {exc.lineno}: {exc.msg}); fix it first") from None
    return source


def _space(source: str):
    from autoresearch_rl.target.knobs import AnnotationError
    from autoresearch_rl.target.space import ActionSpace

    try:
        return ActionSpace.for_source(source)
    except AnnotationError as exc:
        raise UserError(f"bad # search: annotation: {exc}") from None


def cmd_edits(args: argparse.Namespace) -> int:
    from autoresearch_rl.target.knobs import discover_knobs

    import libcst as cst

    source = _read_source(args.source)
    space = _space(source)
    mask = space.mask(source)
    knobs = discover_knobs(cst.parse_module(source))
    rows = []
    for name, op in space.operators.items():
        actions = [a for a in space.actions if a.operator == name]
        knob = knobs.get(getattr(op, "knob", ""))
        rows.append({
            "operator": name,
            "kind": op.kind,
            "args": [a.arg for a in actions],
            "applicable": [a.arg for a in actions if mask[a.index]],
            "mask": [mask[a.index] for a in actions],
            "indices": [a.index for a in actions],
            "current": None if knob is None else knob.value,
        })
    if args.json:
        print(json.dumps(rows))
        return 0
    table = Table(title=f"{len(space)} actions, {sum(mask)} applicable now; (masked) arguments do not apply",
                  title_justify="left")
    for column in ("operator", "kind", "current", "arguments"):
        table.add_column(column)
    for row in rows:
        args_text = " ".join(f"[bold]{a}[/bold]" if ok else f"[dim]({a})[/dim]" for a, ok in zip(row["args"], row["mask"]))
        table.add_row(row["operator"], row["kind"], "" if row["current"] is None else repr(row["current"]), args_text)
    Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(table)
    return 0


def cmd_apply(args: argparse.Namespace) -> int:
    from autoresearch_rl.target.edits import EditError, apply_edit

    source = _read_source(args.source)
    space = _space(source)
    op = space.operators.get(args.operator)
    if op is None:
        known = sorted(space.operators)
        close = [n for n in known if args.operator.split(":")[-1].lower() in n.lower()][:5] or known[:8]
        raise UserError(f"unknown operator {args.operator!r}; e.g. {', '.join(close)} (see `arl edits`)")
    try:
        edit = apply_edit(source, op, args.arg)
    except EditError as exc:
        raise UserError(str(exc)) from None
    print(edit.diff, end="")
    console.print(f"{edit.operator} {edit.arg}: {edit.description}")
    if args.smoke:
        from autoresearch_rl.target.smoke import smoke_check

        result = smoke_check(edit.after)
        console.print(f"smoke check: {'ok' if result.ok else 'FAILED - ' + result.error} ({result.seconds:.1f} s)")
    if args.out:
        out = Path(args.out)
        try:
            tmp = out.with_name(out.name + ".tmp")
            tmp.write_text(edit.after)
            tmp.replace(out)
        except OSError as exc:
            raise UserError(f"cannot write {out} ({exc.strerror}); choose a writable --out") from None
        console.print(f"wrote {out}")
    return 0 if not args.smoke or result.ok else 1
