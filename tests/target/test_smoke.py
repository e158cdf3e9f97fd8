"""The smoke check catches broken edits in seconds, in a subprocess or in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoresearch_rl.target import template_source
from autoresearch_rl.target.smoke import smoke_check

USER_SCRIPT = (Path(__file__).parent / "user_scripts" / "mlp_train.py").read_text()
SHAPE_BUG = template_source().replace(
    "self.proj = nn.Linear(config.mlp_ratio * config.model_dim, config.model_dim, bias=False)",
    "self.proj = nn.Linear(config.model_dim, config.model_dim, bias=False)",
)


@pytest.mark.parametrize("in_process", [True, False])
def test_template_passes(in_process: bool) -> None:
    result = smoke_check(template_source(), in_process=in_process)
    assert result.ok, result.error


@pytest.mark.parametrize("in_process", [True, False])
def test_shape_error_fails_with_the_exception(in_process: bool) -> None:
    assert SHAPE_BUG != template_source()
    result = smoke_check(SHAPE_BUG, in_process=in_process)
    assert not result.ok
    assert "RuntimeError" in result.error and "shapes cannot be multiplied" in result.error


def test_syntax_error_fails_without_running() -> None:
    result = smoke_check("def f(:\n", in_process=False)
    assert not result.ok and result.error.startswith("SyntaxError")
    assert result.seconds < 1.0


def test_script_that_never_finishes_is_caught() -> None:
    source = "from autoresearch_rl.env import runtime\nctx = runtime.setup()\n"
    result = smoke_check(source, in_process=True)
    assert not result.ok and "ctx.finish" in result.error


def test_user_script_passes() -> None:
    result = smoke_check(USER_SCRIPT, in_process=True)
    assert result.ok, result.error


def test_smoke_check_runs_in_the_sandbox(tmp_path: Path) -> None:
    from autoresearch_rl.runner import sandbox as sb

    if sb.probe("bwrap")[0] is None:
        pytest.skip(f"bubblewrap unavailable here: {sb.probe('bwrap')[1]}")
    outside = tmp_path / "written-by-the-smoke-check"
    home_file = Path.home() / ".arl-smoke-probe"
    home_file.write_text("secret")
    try:
        probe = (f"try:\n    open({str(outside)!r}, 'w').write('escaped')\nexcept OSError:\n    pass\n"
                 f"try:\n    open({str(home_file)!r}).read()\n    open({str(outside) + '.home'!r}, 'w').write('read home')\n"
                 "except OSError:\n    pass\n")
        future = "from __future__ import annotations\n"
        assert future in template_source()
        result = smoke_check(template_source().replace(future, future + probe, 1), sandbox="bwrap")
    finally:
        home_file.unlink()
    assert result.ok, result.error  # the candidate itself still runs
    assert not outside.exists() and not Path(str(outside) + ".home").exists()
