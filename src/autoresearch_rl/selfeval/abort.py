"""The early-abort rule: stop a run whose training-loss curve says it will not beat the incumbent.

Most candidates lose; a clearly losing one need not use its whole budget. The rule runs at checks,
the first once `warmup_fraction` of the budget is spent, then every `check_every_fraction` more.
Time t is elapsed training time as a fraction of the budget. Train losses become val_bpb through
the incumbent's ratio r = val_bpb / final_train_loss; the candidate is kept only below the target
incumbent_val_bpb - margin.

1. Broken: a non-finite loss, or the mean of its last 3 losses above its first one (training has made
   the model worse than at initialisation): abort at once.
2. Doomed: abort only when both of these hold by `threshold` standard deviations (z):
   (a) behind now: its losses since the previous check exceed the incumbent's curve, interpolated at
       the same elapsed times;
   (b) misses the target: both curves, over the same elapsed window, are fitted with a power law
       (curves.py) and extrapolated to the end of the budget; the predicted val_bpb is the incumbent's
       plus r times the difference of the two extrapolations (pairing cancels what both share, such
       as the warmdown a power law does not foresee), with the standard error of that difference. The
       margin also counts as a standard deviation of the outcome (run-to-run noise), so a candidate
       equal to the incumbent is never more than 1 sigma from the target.
   When both runs logged their token counts (the runtime prints them, and gives every run of a
   campaign the same order of training windows), (a) and (b) compare the runs at equal tokens
   instead, where both losses are of the same batch and the batch-to-batch noise cancels:
   the final gap is d, the mean difference of the candidate's losses minus the incumbent's over the
   matched points in the last two thirds of the tokens seen so far (per-point noise from successive
   differences of all matched points, so that a drifting gap does not pass for noise), plus what the incumbent's own curve
   (a power law in tokens) gains or loses between its final token count and the one the candidate
   will reach at its present speed relative to the incumbent's at the same elapsed time (a slower
   candidate sees fewer tokens). No extrapolation of the
   gap itself: it is assumed to last, and shadow runs (calibration.py) measure how often it closes.
   (a') behind: that final gap over its standard error;
   (b') misses the target: the final gap converted to val_bpb with r and compared with the target
        like (b), the margin again counting as outcome noise.
   With fewer than MIN_PAIRS matched points the unpaired rule applies.
   Fits leave out the first logged point (the model before any update) and the first tenth of the
   window, and need MIN_FIT_POINTS points each; with fewer, (2) stays silent.
   Per-point noise is the larger of both fits' rmse (and 0.5% of the loss: a small fit can be exact);
   with few points the sigmas are widened by t_dof(Φ(z)) / z, as noise estimated from dof residuals asks.

Checks repeat 17 times in a run (from 20% of the budget, every 5%); at z = 3 the chance under the Gaussian
model that any of them fires on a candidate that would reach the target is below 17 · 0.13% (a Bonferroni bound for the
sequence). Model error is not in that bound: calibration.py measures false aborts on shadow runs
(never killed, they record where they would have been) and adapts z.

3. Measured: the Gaussian model above knows the curves' noise, not how far a curve's prediction
   lands from the val_bpb the run really scores (a shallower model can trail at equal tokens and
   still win; the train loss of the last batches is not the validation set). So every run records
   the prediction of each check (`abort_checks` in its summary), and once MIN_MEASURED finished runs
   of the campaign give the errors (scored val_bpb - prediction) at the same check, those errors
   replace the model in (2): the prediction is corrected by their median and its spread is their
   robust standard deviation (1.4826 · MAD) combined with the curves' noise. The run is aborted when
   its corrected prediction misses the target by `measured_threshold` of that spread: under the
   measured errors it then has less than Φ(-z) (2.3% at z = 2) chance to be kept. The errors are
   of the outcome itself (they hold the run-to-run noise), so the margin is not counted again, and
   (a) is not needed: the measurement, not a model, says how much the present gap is worth.
   calibration.py's shadow runs check this rule as they check the other.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

from autoresearch_rl.selfeval.curves import PowerLawFit, fit_power_law

if TYPE_CHECKING:
    from autoresearch_rl.logparse import ProgressPoint

SKIP_FRACTION = 0.1  # fits ignore the first tenth of the elapsed window: the first steps fall faster than a power law
MIN_FIT_POINTS = 5  # fewer than this in a window and the curve rule (2) does not fire
MIN_PAIRS = 5  # matched points (equal tokens) in the recent window for the paired rule; fewer: the unpaired rule
_RECENT_TOKENS = 2 / 3  # the paired gap is averaged over the last two thirds of the tokens seen so far
_SAME_SPEED = 0.02  # token counts at the end within 2%: no speed correction
_PAIRED_NOISE_FLOOR = 0.001  # paired differences' noise is at least this fraction of the incumbent's final loss
_RECENT = 3  # losses averaged by the divergence test
_NOISE_FLOOR = 0.005  # per-point noise is at least this fraction of the incumbent's final loss
MIN_MEASURED = 6  # prediction errors of finished runs at a check before the measured rule (3) replaces the model
MAX_MEASURED = 64  # the most recent errors per check: the landscape moves as the incumbent improves
_MEASURED_FLOOR = 0.001  # the spread of measured errors is at least this fraction of the incumbent's val_bpb
# summary keys the runner writes about the rule: a candidate printing them in its own summary is overridden or dropped
SUMMARY_KEYS = ("curve", "aborted_at_fraction", "predicted_final_loss", "predicted_val_bpb", "abort_reason",
                "would_abort_at_fraction", "would_abort_predicted_val_bpb", "would_abort_reason", "abort_checks")


# The schedule and thresholds, in one place: AbortConfig (the campaign's) and AbortSpec (one run's) default to them.
WARMUP_FRACTION = 0.2  # no check before this fraction of the budget is spent
CHECK_EVERY_FRACTION = 0.05  # then one check each time this much more of it is spent
Z = 3.0  # base threshold of the noise-model rules, in standard deviations (the calibrator adapts it)
MEASURED_Z = 2.0  # threshold of rule (3), once the campaign has measured its prediction errors


@dataclass(frozen=True)
class AbortSpec:
    """What a worker needs to judge one run against the incumbent; built by the controller, picklable."""

    incumbent_curve: tuple[tuple[float, ...], ...]  # the incumbent's (elapsed_s, train loss[, tokens]) progress points
    incumbent_final_loss: float  # its final_train_loss
    incumbent_val_bpb: float  # its score
    margin: float  # keep margin in val_bpb: a candidate is kept below incumbent_val_bpb - margin
    budget_s: float  # the preset's time budget
    threshold: float = Z  # z of the rule, from AbortCalibrator.threshold
    shadow: bool = False  # never kill: only record where the rule would have aborted
    warmup_fraction: float = WARMUP_FRACTION
    check_every_fraction: float = CHECK_EVERY_FRACTION
    incumbent_tokens: tuple[int, ...] = ()  # tokens at each curve point (from a curve's third column when it has one)
    # rule (3): per check (0 = the warm-up check), scored val_bpb - prediction of the campaign's finished runs
    prediction_errors: tuple[tuple[float, ...], ...] = ()
    measured_threshold: float = MEASURED_Z

    def __post_init__(self) -> None:
        raw = tuple(tuple(point) for point in self.incumbent_curve)
        if not self.incumbent_tokens and raw and all(len(point) >= 3 for point in raw):
            object.__setattr__(self, "incumbent_tokens", tuple(int(point[2]) for point in raw))
        object.__setattr__(self, "incumbent_curve", tuple((float(point[0]), float(point[1])) for point in raw))
        if self.incumbent_tokens and len(self.incumbent_tokens) != len(self.incumbent_curve):
            raise ValueError("AbortSpec.incumbent_tokens must have one count per curve point")
        for name in ("incumbent_final_loss", "incumbent_val_bpb", "budget_s", "check_every_fraction"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"AbortSpec.{name} must be a positive number, got {value!r}")
        if not (self.margin >= 0 and self.threshold >= 0 and 0 <= self.warmup_fraction <= 1):
            raise ValueError("AbortSpec: margin and threshold must be >= 0 and warmup_fraction in [0, 1]")
        errors = tuple(tuple(float(e) for e in check) for check in self.prediction_errors)
        if not all(math.isfinite(e) for check in errors for e in check) or not self.measured_threshold >= 0:
            raise ValueError("AbortSpec: prediction_errors must be finite and measured_threshold >= 0")
        object.__setattr__(self, "prediction_errors", errors)

    @property
    def bpb_per_loss(self) -> float:
        """r: val_bpb per unit of train loss, from the incumbent."""
        return self.incumbent_val_bpb / self.incumbent_final_loss


@dataclass(frozen=True)
class AbortConfig:
    """Early abort of doomed runs (this module) and the calibration of its threshold (calibration.py)."""

    enabled: bool = True  # judge runs against the incumbent's curve and stop the doomed ones
    warmup_fraction: float = WARMUP_FRACTION
    check_every_fraction: float = CHECK_EVERY_FRACTION
    z: float = Z
    shadow_probability: float = 0.2  # chance that a run is a shadow: never killed, it records where it would have been
    max_false_abort_rate: float = 0.05  # bound on aborted runs that would have been kept
    measured_z: float = MEASURED_Z

    def __post_init__(self) -> None:
        if not 0 <= self.warmup_fraction < 1 or not 0 < self.check_every_fraction <= 1:
            raise ValueError("abort: warmup_fraction must be in [0, 1) and check_every_fraction in (0, 1]")
        if self.z < 0 or not 0 <= self.shadow_probability <= 1 or not 0 < self.max_false_abort_rate < 1:
            raise ValueError("abort: z must be >= 0, shadow_probability in [0, 1], max_false_abort_rate in (0, 1)")
        if not self.measured_z >= 0:
            raise ValueError("abort: measured_z must be >= 0")

    def spec(self, *, incumbent_curve: Sequence[Sequence[float]], incumbent_final_loss: float,
             incumbent_val_bpb: float, margin: float, budget_s: float, threshold: float | None = None,
             shadow: bool = False, prediction_errors: Sequence[Sequence[float]] = ()) -> AbortSpec:
        """The spec of one run under this config (threshold: the calibrated z, default the base z; the
        calibration moves the measured rule's threshold by as much as it moves the base one)."""
        z = self.z if threshold is None else threshold
        return AbortSpec(incumbent_curve=tuple(tuple(float(x) for x in point) for point in incumbent_curve),
                         incumbent_final_loss=incumbent_final_loss, incumbent_val_bpb=incumbent_val_bpb,
                         margin=margin, budget_s=budget_s, threshold=z, shadow=shadow,
                         warmup_fraction=self.warmup_fraction, check_every_fraction=self.check_every_fraction,
                         prediction_errors=tuple(tuple(check) for check in prediction_errors),
                         measured_threshold=max(0.0, self.measured_z + z - self.z))


@dataclass(frozen=True)
class AbortAssessment:
    """The rule's verdict at one check; predictions are nan where there is no prediction yet."""

    abort: bool
    fraction: float  # of the budget spent at the last progress point
    predicted_final_loss: float
    predicted_val_bpb: float
    reason: str
    curve_val_bpb: float = math.nan  # the prediction from the curves alone (rules 2a-b'), before rule (3) corrects it
    curve_sd: float = math.nan  # its standard deviation in val_bpb from the curves' noise (no model error)


def budget_fraction(point: ProgressPoint, budget_s: float) -> float:
    """Budget spent at a point: the runtime's own percentage (it counts token caps too), else elapsed / budget."""
    return point.percent / 100.0 if point.percent is not None else point.elapsed / budget_s


def next_check(spec: AbortSpec, fraction: float) -> float:
    """The first check fraction after `fraction`: warm-up, then every check_every_fraction."""
    if fraction < spec.warmup_fraction:
        return spec.warmup_fraction
    done = check_index(fraction, spec.warmup_fraction, spec.check_every_fraction) + 1
    return spec.warmup_fraction + done * spec.check_every_fraction


def check_index(fraction: float, warmup_fraction: float, check_every_fraction: float) -> int:
    """Which check a fraction of the budget falls in: 0 from the warm-up, then one per check_every_fraction."""
    return max(0, math.floor((fraction - warmup_fraction) / check_every_fraction + 1e-9))


def measured_errors(runs: Sequence[tuple[Sequence[Sequence[float]], float]], warmup_fraction: float,
                    check_every_fraction: float) -> tuple[tuple[float, ...], ...]:
    """Rule (3)'s data: from finished runs' (abort_checks, scored val_bpb), oldest first, the errors
    val_bpb - prediction at each check (index as check_index), the MAX_MEASURED most recent."""
    by_check: dict[int, list[float]] = {}
    for records, val_bpb in runs:
        for fraction, predicted, *_ in records:
            if math.isfinite(predicted) and math.isfinite(val_bpb):
                k = check_index(fraction, warmup_fraction, check_every_fraction)
                by_check.setdefault(k, []).append(val_bpb - predicted)
    return tuple(tuple(by_check.get(k, [])[-MAX_MEASURED:]) for k in range(max(by_check, default=-1) + 1))


def robust_spread(errors: Sequence[float]) -> tuple[float, float]:
    """(median, 1.4826 * median absolute deviation): a centre and sd that a few wild errors do not move."""
    values = np.asarray(errors, dtype=float)
    median = float(np.median(values))
    return median, 1.4826 * float(np.median(np.abs(values - median)))


def _measured(spec: AbortSpec, fraction: float, curve_bpb: float, curve_sd: float) -> AbortAssessment | None:
    """Rule (3) of the module docstring; None until MIN_MEASURED errors are known at this check."""
    k = check_index(fraction, spec.warmup_fraction, spec.check_every_fraction)
    errors = np.array(spec.prediction_errors[k] if k < len(spec.prediction_errors) else ())
    if errors.size < MIN_MEASURED or not math.isfinite(curve_bpb):
        return None
    bias, spread = robust_spread(errors)
    spread = max(spread, _MEASURED_FLOOR * spec.incumbent_val_bpb)
    predicted_bpb = curve_bpb + bias
    target = spec.incumbent_val_bpb - spec.margin
    z_end = (predicted_bpb - target) / math.hypot(curve_sd if math.isfinite(curve_sd) else 0.0, spread)
    z = spec.measured_threshold
    abort = z_end > z
    reason = (f"{'abort' if abort else 'continue'} at {fraction:.0%}: predicted val_bpb {predicted_bpb:.4f} vs target "
              f"{target:.4f} ({z_end:+.1f} sd of the errors measured at this check: {errors.size} finished runs, "
              f"median {bias:+.4f}, sd {spread:.4f}; curves alone said {curve_bpb:.4f}; threshold {z:.1f})")
    predicted_loss = spec.incumbent_final_loss + (predicted_bpb - spec.incumbent_val_bpb) / spec.bpb_per_loss
    return AbortAssessment(abort, fraction, predicted_loss, predicted_bpb, reason, curve_bpb, curve_sd)


def _broken(spec: AbortSpec, points: Sequence[ProgressPoint], fraction: float) -> AbortAssessment | None:
    losses = [p.loss for p in points]
    bad = next((p for p in points if not math.isfinite(p.loss)), None)
    if bad is not None:
        finite = [v for v in losses if math.isfinite(v)]
        worst = max(finite) if finite else math.inf
        return AbortAssessment(True, fraction, worst, worst * spec.bpb_per_loss,
                               f"non-finite training loss ({bad.loss}) at step {bad.step}")
    recent = sum(losses[-_RECENT:]) / len(losses[-_RECENT:])
    if len(losses) > 1 and recent > losses[0]:
        return AbortAssessment(True, fraction, recent, recent * spec.bpb_per_loss,
                               f"diverged: mean of the last losses {recent:.4f} is above the first one {losses[0]:.4f}")
    return None


@functools.lru_cache(maxsize=64)
def student_t_quantile(p: float, dof: int) -> float:
    """Quantile p (> 0.5) of Student's t with dof degrees of freedom, by integrating its density (no scipy)."""
    x = np.expm1(np.linspace(0.0, math.log1p(1e4), 8001))  # dense near 0, reaching the Cauchy's far tail
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)
    pdf = np.exp(log_norm - (dof + 1) / 2 * np.log1p(x * x / dof))
    cdf = 0.5 + np.concatenate([[0.0], np.cumsum(np.diff(x) * (pdf[1:] + pdf[:-1]) / 2)])
    return float(np.interp(p, cdf, x))


def _fit(t: np.ndarray, y: np.ndarray) -> PowerLawFit | None:
    try:
        fit = fit_power_law(t, y, skip_fraction=SKIP_FRACTION)
    except ValueError:
        return None
    return fit if fit.n >= MIN_FIT_POINTS else None


def _matched(spec: AbortSpec, points: Sequence[ProgressPoint]) -> tuple[np.ndarray, np.ndarray]:
    """(tokens, candidate loss - incumbent loss) where both logged the same token count (first points left out)."""
    incumbent = dict(zip(spec.incumbent_tokens[1:], (loss for _, loss in spec.incumbent_curve[1:])))
    rows = [(p.tokens, p.loss - incumbent[p.tokens]) for p in points[1:] if p.tokens in incumbent]
    return np.array([r[0] for r in rows], dtype=float), np.array([r[1] for r in rows], dtype=float)


def _speed_gap(spec: AbortSpec, end_tokens: float) -> tuple[float, float] | None:
    """What the incumbent's loss gains between its final token count and `end_tokens`, with a standard
    error: the price of being slower (positive) or the gain of being faster. None: no fit to say it."""
    final_tokens = spec.incumbent_tokens[-1]
    x = end_tokens / final_tokens
    if abs(x - 1.0) <= _SAME_SPEED:
        return 0.0, 0.0
    fit = _fit(np.array(spec.incumbent_tokens[1:], dtype=float) / final_tokens,
               np.array([loss for _, loss in spec.incumbent_curve[1:]]))
    if fit is None:
        return None
    return float(fit.predict(x)) - float(fit.predict(1.0)), fit.difference_std(x, 1.0)


def _end_tokens(spec: AbortSpec, now: ProgressPoint) -> float:
    """Tokens the candidate will have seen at the end of its budget: the incumbent's final count, scaled by
    how many the candidate has now against the incumbent at the same elapsed time (both paid the same
    slow first steps, so the ratio carries no warm-up bias, unlike tokens / fraction)."""
    elapsed = np.array([e for e, _ in spec.incumbent_curve])
    incumbent_now = float(np.interp(now.elapsed, elapsed, np.array(spec.incumbent_tokens, dtype=float)))
    return spec.incumbent_tokens[-1] * float(now.tokens or 0) / max(incumbent_now, 1.0)


def _paired(spec: AbortSpec, points: Sequence[ProgressPoint], fraction: float) -> AbortAssessment | None:
    """Rules (a') and (b') of the module docstring; None when the runs cannot be paired (too few matches)."""
    now_tokens = points[-1].tokens
    if not spec.incumbent_tokens or now_tokens is None or fraction <= 0:
        return None
    tokens, gaps = _matched(spec, points)
    recent = gaps[tokens > now_tokens * (1 - _RECENT_TOKENS)]
    if recent.size < MIN_PAIRS:
        return None
    speed = _speed_gap(spec, _end_tokens(spec, points[-1]))
    if speed is None:
        return None
    z = spec.threshold
    # per-point noise from successive differences of all matched gaps: a drifting gap does not inflate it
    jumps = np.diff(gaps)
    widen = student_t_quantile(NormalDist().cdf(z), jumps.size) / z if z > 0 else 1.0
    noise = max(float(np.sqrt(np.mean(jumps**2) / 2)), _PAIRED_NOISE_FLOOR * spec.incumbent_final_loss)
    gap = float(recent.mean())
    speed_gap, speed_sd = speed
    predicted_gap = gap + speed_gap
    gap_sd = math.hypot(noise / math.sqrt(recent.size), speed_sd) * widen
    z_now = predicted_gap / gap_sd

    r = spec.bpb_per_loss
    predicted_bpb = spec.incumbent_val_bpb + r * predicted_gap
    target = spec.incumbent_val_bpb - spec.margin
    z_end = (predicted_bpb - target) / math.hypot(r * gap_sd, spec.margin)

    measured = _measured(spec, fraction, predicted_bpb, r * gap_sd / widen)
    if measured is not None:
        return measured
    abort = z_now > z and z_end > z
    verdict = "abort" if abort else "continue"
    reason = (f"{verdict} at {fraction:.0%}: predicted val_bpb {predicted_bpb:.4f} vs target {target:.4f} "
              f"({z_end:+.1f} sd); {gap:+.4f} nats behind the incumbent at equal tokens and {speed_gap:+.4f} for "
              f"its speed ({z_now:+.1f} sd, {recent.size} paired points; threshold {z:.1f})")
    return AbortAssessment(abort, fraction, spec.incumbent_final_loss + predicted_gap, predicted_bpb, reason,
                           predicted_bpb, r * gap_sd / widen)


def assess(spec: AbortSpec, points: Sequence[ProgressPoint]) -> AbortAssessment:
    """Apply the rule (module docstring) to a run's progress points so far."""
    if not points:
        return AbortAssessment(False, 0.0, math.nan, math.nan, "no progress yet")
    fraction = budget_fraction(points[-1], spec.budget_s)
    if fraction < spec.warmup_fraction:
        return AbortAssessment(False, fraction, math.nan, math.nan,
                               f"warm-up: {fraction:.0%} of the budget < {spec.warmup_fraction:.0%}")
    broken = _broken(spec, points, fraction)
    if broken is not None:
        return broken
    paired = _paired(spec, points, fraction)
    if paired is not None:
        return paired
    too_few = AbortAssessment(False, fraction, math.nan, math.nan,
                              f"too few points to compare curves at {fraction:.0%} of the budget")
    if len(points) <= MIN_FIT_POINTS:
        return too_few

    # the first logged point is the model at initialisation (its loss comes before the first update): not on the curve
    t = np.array([p.elapsed for p in points[1:]]) / spec.budget_s
    y = np.array([p.loss for p in points[1:]])
    inc = np.array(spec.incumbent_curve[1:], dtype=float).reshape(-1, 2)
    inc_t, inc_y = inc[:, 0] / spec.budget_s, inc[:, 1]
    now = float(t[-1])
    window = inc_t <= now * (1 + 1e-9)
    cand_fit, inc_fit = _fit(t, y), _fit(inc_t[window], inc_y[window])
    if cand_fit is None or inc_fit is None:
        return too_few

    z = spec.threshold
    widen = student_t_quantile(NormalDist().cdf(z), min(cand_fit.n, inc_fit.n) - 3) / z if z > 0 else 1.0
    noise = max(cand_fit.rmse, inc_fit.rmse, _NOISE_FLOOR * spec.incumbent_final_loss)
    r = spec.bpb_per_loss

    # (a) behind now: the losses since the previous check against the incumbent at the same elapsed times
    recent = t > now - spec.check_every_fraction
    gap_now = y[recent] - np.interp(t[recent], inc_t, inc_y)
    z_now = float(gap_now.mean()) / (noise * math.sqrt(2.0 / gap_now.size) * widen)

    # (b) the paired extrapolation to the end of each run
    end = now / fraction if fraction > 0 else 1.0  # the runtime's percentage says when this run's budget ends
    gap_end = float(cand_fit.predict(end)) - float(inc_fit.predict(float(inc_t[-1])))
    sd_end = math.hypot(cand_fit.predict_std(end, noise), inc_fit.predict_std(float(inc_t[-1]), noise)) * widen
    predicted_loss = spec.incumbent_final_loss + gap_end
    predicted_bpb = spec.incumbent_val_bpb + r * gap_end
    target = spec.incumbent_val_bpb - spec.margin
    z_end = (predicted_bpb - target) / math.hypot(r * sd_end, spec.margin)  # sd_end > 0: noise has a floor

    measured = _measured(spec, fraction, predicted_bpb, r * sd_end / widen)
    if measured is not None:
        return measured
    abort = z_now > z and z_end > z
    verdict = "abort" if abort else "continue"
    reason = (f"{verdict} at {fraction:.0%}: predicted val_bpb {predicted_bpb:.4f} vs target {target:.4f} "
              f"({z_end:+.1f} sd), {z_now:+.1f} sd behind the incumbent now (threshold {z:.1f})")
    return AbortAssessment(abort, fraction, predicted_loss, predicted_bpb, reason, predicted_bpb, r * sd_end / widen)
