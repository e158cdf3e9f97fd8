"""Constants and their `# search:` specs are discovered from any train.py."""

from __future__ import annotations

from pathlib import Path

import libcst as cst
import pytest

from autoresearch_rl.target import template_source
from autoresearch_rl.target.knobs import AnnotationError, discover_knobs, parse_spec

USER_SCRIPT = (Path(__file__).parent / "user_scripts" / "mlp_train.py").read_text()


@pytest.mark.parametrize(
    ("comment", "kind", "low", "high", "choices"),
    [
        ("# search: log 0.005..0.2", "log", 0.005, 0.2, ()),
        ("# search: linear 0.0..0.9", "linear", 0.0, 0.9, ()),
        ("# search: int 1..12", "int", 1, 12, ()),
        ("# search: log-int 2..512", "log-int", 2, 512, ()),
        ('# search: choice 64, 128, "x", True', "choice", None, None, (64, 128, "x", True)),
        ("# why: explains it  # search: log 1..10", "log", 1, 10, ()),
    ],
)
def test_annotations_are_parsed(comment, kind, low, high, choices) -> None:
    spec = parse_spec("X", comment, 1.0)
    assert (spec.kind, spec.low, spec.high, spec.choices, spec.declared) == (kind, low, high, choices, True)


@pytest.mark.parametrize("comment", ["# search: log 0..1", "# search: linear 5..1", "# search: choice 1",
                                     "# search: int a..b", "# search: choice [1, 2"])
def test_malformed_annotation_names_the_constant(comment: str) -> None:
    with pytest.raises(AnnotationError, match="^LR: "):
        parse_spec("LR", comment, 1.0)


def test_unannotated_constants_get_sane_default_ranges() -> None:
    assert parse_spec("A", None, 0.01).kind == "log" and parse_spec("A", None, 0.01).contains(0.05)
    assert parse_spec("B", None, 64).kind == "log-int" and parse_spec("B", None, 64).contains(128)
    assert parse_spec("C", None, 3).kind == "int"
    assert parse_spec("D", None, True).choices == (False, True)
    assert parse_spec("E", None, "text") is None  # a bare string has no known alternatives
    assert parse_spec("F", None, 0.0).kind == "linear"


def test_every_template_constant_is_discovered_with_its_declared_spec() -> None:
    knobs = discover_knobs(cst.parse_module(template_source()))
    assert {"DEPTH", "MATRIX_LR", "BATCH_SIZE", "HEAD_DIM", "WARMDOWN_FRAC", "COMPILE"} <= set(knobs)
    assert all(k.spec.declared for k in knobs.values())
    assert knobs["MATRIX_LR"].spec.kind == "log"
    assert all(0.0 <= k.normalised <= 1.0 for k in knobs.values())


def test_user_script_constants_lowercase_and_derived_names_are_skipped() -> None:
    knobs = discover_knobs(cst.parse_module(USER_SCRIPT))
    assert list(knobs) == ["HIDDEN", "LEARNING_RATE", "BATCH", "USE_BIAS", "ACTIVATION", "MOMENTUM"]
    assert not knobs["HIDDEN"].spec.declared and knobs["HIDDEN"].spec.kind == "log-int"
    assert knobs["USE_BIAS"].spec.kind == "bool"


def test_normalised_position_uses_log_scale_where_declared() -> None:
    knobs = discover_knobs(cst.parse_module("LR = 0.01  # search: log 0.001..0.1\nW = 0.5  # search: linear 0..1\n"))
    assert knobs["LR"].normalised == pytest.approx(0.5)
    assert knobs["W"].normalised == pytest.approx(0.5)
