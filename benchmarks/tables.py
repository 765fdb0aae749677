"""The report's text: one block per part that ran (its figures, the targets' verdicts, or
"smoke" in a smoke run), then the errors. Reads the result dict that main() writes as JSON."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.measure import median
from benchmarks.settings import SMOKE, TARGETS


def fmt(x: float | None, spec: str = ".0f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def verdict(value: float | None, target: float, higher: bool = True, smoke: bool = False) -> str:
    if smoke:
        return SMOKE
    if value is None or not math.isfinite(value):
        return "n/a"
    return "MET" if (value >= target if higher else value <= target) else "not met"


def table(result: dict[str, Any]) -> str:
    """The report: one block per part that ran, then the errors, if any."""
    smoke = bool(result.get("smoke"))
    lines = [
        f"bench {result['started']}  {result['machine']}",
        f"keras {result['versions'].get('keras')} / tensorflow {result['versions'].get('tensorflow')}"
        f"  backend {result.get('backend', '?')}  load average at start {result['load_start']}",
    ]
    if smoke:
        lines.append("SMOKE RUN: tiny budgets check that every part runs; its figures measure nothing")
    tp = result.get("throughput")
    if tp:
        lines += [
            "",
            f"THROUGHPUT  (images/s: median of {tp['epochs'] - 1} timed epoch(s) x "
            f"{tp['rounds']} alternated round(s);",
            _peak_line(tp),
            "of peak: the side's GFLOP/s over the peak of the precision it computes in (f32 / bf16);",
            "img/cpu-s: images per CPU-second of the process; best: fastest epoch against fastest)",
            f"{'model':<16}{'side':<18}{'images':>7}{'img/s':>8}{'range':>13}{'ratio':>7}"
            f"{'GFLOP/s':>9}{'of peak':>13}{'img/cpu-s':>10}{'ratio':>7}{'best':>6}  target",
        ]
        for name, m in tp["models"].items():
            for side, s in m["sides"].items():
                rng = f"{fmt(s['min'])}-{fmt(s['max'])}"
                ratio = s.get("ratio")
                tgt = ""
                if side == "project":
                    tgt = _targets_text(TARGETS.get(name, {}), s, smoke)
                peak = s.get("peak_fraction")
                of_peak = f"{fmt(peak * 100 if peak else None, '.0f')}% {_SHORT.get(s.get('precision'), '?')}"
                lines.append(
                    f"{name:<16}{side[:17]:<18}{fmt(m['n_fit'], 'd'):>7}{fmt(s['images_per_s']):>8}"
                    f"{rng:>13}{fmt(ratio, '.2f'):>7}{fmt(s.get('gflops'), '.1f'):>9}"
                    f"{of_peak:>13}"
                    f"{fmt(s.get('images_per_cpu_s')):>10}{fmt(s.get('cpu_ratio'), '.2f'):>7}"
                    f"{fmt(s.get('best_ratio'), '.2f'):>6}  {tgt}"
                )
            lines.append(
                f"{'':<16}training MFLOP/image {m['mflop_per_image']:.1f}; "
                f"project settings: {m['project_settings']}"
            )
        lines.append(f"load average after: {tp['load_end']}")
    mem = result.get("memory")
    if mem:
        lines += [
            "",
            f"MEMORY  ({mem['fits']} sequential fits of {mem['model']} on {mem['images']} images, "
            "one process)",
            f"RSS after fit 1 {mem['rss_first_mb']:.0f} MB, after fit {mem['fits']} "
            f"{mem['rss_last_mb']:.0f} MB: growth {mem['growth_mb']:+.0f} MB "
            f"(target < {TARGETS['memory_growth_mb']:.0f} MB: "
            f"{verdict(mem['growth_mb'], TARGETS['memory_growth_mb'], higher=False, smoke=smoke)}); "
            f"peak (VmHWM) {mem['peak_mb']:.0f} MB; {mem['seconds']:.0f} s",
        ]
    se = result.get("search")
    if se:
        b = se["budget"]
        lines += [
            "",
            f"SEARCH  (configs/search.yaml space; stratified subset of {b['subset']} training images, "
            f"n_iter {b['n_iter']}, {b['cv']} folds (test_size {b['test_size']}), at most "
            f"{b['epochs']} epochs per fit with the config's early stopping;",
            "to quality: until a candidate's full CV mean is within 1 point of the plain best)",
            f"{'run':<44}{'wall s':>8}{'of plain':>9}{'to qual s':>10}{'of plain':>9}{'fits':>6}"
            f"{'best CV':>9}{'vs plain':>9}  target",
        ]
        plain = se["runs"].get("plain")
        for key, r in se["runs"].items():
            lines.append(_search_line(key, r, plain, smoke))
        lines += [_tracking_line(r, smoke) for r in se["runs"].values() if r.get("tracking_s") is not None]
        lines.append(f"load average after: {se['load_end']}")
    if result.get("speedrun"):
        lines += _speedrun_table(result["speedrun"], smoke)
    errors = result.get("errors")
    if errors:
        lines += ["", f"ERRORS ({len(errors)})"] + [f"  {e}" for e in errors]
    return "\n".join(lines)


def _speedrun_table(sr: dict[str, Any], smoke: bool) -> list[str]:
    images = "all training images" if sr["subset"] is None else f"the --subset {sr['subset']} draw"
    where = (  # the reference's device; each port side's is in its runs
        "the reference on CUDA in float16" if sr.get("device") == "cuda" else "float32 on the CPU"
    )
    lines = [
        "",
        "SPEEDRUN  (airbench94 itself, benchmarks/reference.py, against configs/speedrun.yaml;",
        f"{images}, {where}, one fresh process per training, alternated; accuracy: mean +/- sd over seeds;",
        "img/s and img/cpu-s: images trained over the whole training call;",
        "steady: the median epoch after the first)",
        f"{'side':<11}{'seeds':>6}{'epochs':>7}{'TTA acc %':>15}{'no-TTA acc %':>15}{'train s':>9}"
        f"{'img/s':>7}{'img/cpu-s':>10}{'steady img/s':>13}{'steady /cpu-s':>14}",
    ]
    for side, s in sr.get("sides", {}).items():
        lines.append(
            f"{side:<11}{len(s['seeds']):>6}{s['epochs']:>7}"
            f"{_pm(s['accuracy_tta_mean'], s['accuracy_tta_sd']):>15}"
            f"{_pm(s['accuracy_mean'], s['accuracy_sd']):>15}{fmt(s['train_s']):>9}"
            f"{fmt(s['images_per_s']):>7}{fmt(s['images_per_cpu_s']):>10}"
            f"{fmt(s['steady_images_per_s']):>13}{fmt(s['steady_images_per_cpu_s']):>14}"
        )
    for side, s in sr.get("sides", {}).items():
        r = s.get("ratios")
        if not r:
            continue
        diff = s["accuracy_tta_difference"] * 100
        lines.append(
            f"{side} / reference: img/cpu-s {r['images_per_cpu_s']:.2f}x "
            f"(steady {r['steady_images_per_cpu_s']:.2f}x), img/s {r['images_per_s']:.2f}x, "
            f"training time {r['train_s']:.2f}x; TTA accuracy {diff:+.2f} points"
        )
        lines.append(
            f"  targets: img/cpu-s >= 1.0x: {verdict(r['images_per_cpu_s'], 1.0, smoke=smoke)}; "
            f"|accuracy difference| <= 0.3 points: {verdict(-abs(round(diff, 2)), -0.3, smoke=smoke)}"
        )
    for name, sets in sr.get("variants", {}).items():
        if sets:
            lines.append(f"{name}: " + ", ".join(f"{k}={v}" for k, v in sets.items()))
    lines.append(f"load average after: {sr['load_end']}")
    return lines


def _pm(mean: float, sd: float) -> str:
    return f"{100 * mean:.2f} +/- {100 * sd:.2f}" if not math.isnan(sd) else f"{100 * mean:.2f}"


_SHORT = {"float32": "f32", "bfloat16": "bf16"}
_TARGET_NAMES = {
    "ratio": ("wall ratio", "{:.1f}x"),
    "cpu_ratio": ("per CPU-s", "{:.1f}x"),
    "peak_fraction": ("of peak", "{:.0%}"),
}


def _targets_text(targets: dict[str, float], side: dict[str, Any], smoke: bool) -> str:
    """`wall ratio >= 2.0x: MET; ...` for the targets of a model's project side."""
    return "; ".join(
        f"{label} >= {spec.format(target)}: {verdict(side.get(key), target, smoke=smoke)}"
        for key, (label, spec) in _TARGET_NAMES.items()
        if (target := targets.get(key)) is not None
    )


def _peak_line(tp: dict[str, Any]) -> str:
    peaks, samples = tp.get("peak_gflops", {}), tp.get("peak_samples", {})
    framework = ", ".join(
        f"{dtype} {fmt(peaks.get(dtype))} (median {fmt(median(samples.get(dtype, [])))})"
        for dtype in ("float32", "bfloat16")
    )
    return (
        f"peak GFLOP/s, TensorFlow matmul 2048^2: {framework}; numpy (OpenBLAS) float32 GEMM "
        f"{fmt(tp['gemm_gflops'])} (median {fmt(tp.get('gemm_median'))}); best of "
        f"{len(tp['gemm_samples'])} samples, one per round;"
    )


def _tracking_line(r: dict[str, Any], smoke: bool) -> str:
    share = r["tracking_s"] / r["wall_s"] if r.get("wall_s") else None
    limit = TARGETS["tensorboard_fraction"]
    return (
        f"  {r['label']}: TensorBoard wrote {r.get('tensorboard_files', 0)} files, "
        f"{r.get('tensorboard_bytes', 0) / 1024:.0f} KB, in {r['tracking_s']:.2f} s = "
        f"{fmt(share * 100 if share is not None else None, '.2f')}% of its wall time "
        f"(target < {limit:.0%}: {verdict(share, limit, higher=False, smoke=smoke)})"
    )


def _search_line(key: str, r: dict[str, Any], plain: dict[str, Any] | None, smoke: bool = False) -> str:
    def of_plain(name: str) -> float | None:
        if key == "plain" or not plain or not r.get(name) or not plain.get("wall_s"):
            return None
        fraction: float = r[name] / plain["wall_s"]
        return fraction

    frac, ttq = of_plain("wall_s"), of_plain("time_to_quality_s")
    gap = (
        (r["best_score"] - plain["best_score"]) * 100
        if plain
        and key != "plain"
        and r.get("best_score") is not None
        and plain.get("best_score") is not None
        else None
    )
    tgt = ""
    if key != "plain" and plain and r.get("wall_s"):
        ok = ttq is not None and ttq <= TARGETS["search_time_fraction"]
        limit = TARGETS["search_time_fraction"]
        tgt = f"within 1 pt in <= {limit:.2f} of the time: {SMOKE if smoke else 'MET' if ok else 'not met'}"
    if r.get("error"):
        tgt = "ERROR: " + r["error"][:80]
    return (
        f"{r['label'][:43]:<44}{fmt(r.get('wall_s')):>8}{fmt(frac, '.2f'):>9}"
        f"{fmt(r.get('time_to_quality_s')):>10}{fmt(ttq, '.2f'):>9}"
        f"{fmt(r.get('n_fits'), 'd'):>6}{fmt(r.get('best_score'), '.4f'):>9}{fmt(gap, '+.1f'):>9}  {tgt}"
    )
