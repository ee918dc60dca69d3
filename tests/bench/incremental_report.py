"""The incremental section's results (tests/bench/incremental.py): the issue's targets with a verdict,
and one side-by-side table of full, incrementals and restores per kind of change and tool."""

from __future__ import annotations

import statistics

TARGET_BYTES = 0.10          # stored bytes of an incremental <= 10% of the full's (every version)
TARGET_TIME = 0.25           # base-push time <= 25% of the full's (17+ with WAL summaries)
TARGET_RESTORE = 1.3         # restore of full + 2 incrementals <= 1.3x the full's


def verdicts(prefix: str, pgv: int, tools: list[str], ratios: dict[str, list[float]]) -> list[str]:
    """One line per target and tool: the median of the paired ratios (each incremental with the full
    of its own cycle, each chain restore with the full restore of its repetition); MET/MISSED for
    pgvault where the issue sets a target."""
    targets = [("bytes", TARGET_BYTES, "stored bytes incremental / full"),
               ("time", TARGET_TIME if pgv >= 17 else None, "backup time incremental / full"),
               ("restore", TARGET_RESTORE, "restore full + 2 incrementals / restore a full")]
    lines = []
    for key, target, what in targets:
        for tool in tools:
            samples = ratios.get(f"{tool} {key}")
            if not samples:
                continue
            value = statistics.median(samples)
            if tool != "base-push" or target is None:
                verdict = f"{value:.3f} (no target{' on this version' if tool == 'base-push' else ': comparison'})"
            else:
                verdict = f"{value:.3f}, target <= {target}: {'MET' if value <= target else 'MISSED'}"
            lines.append(f"incremental {prefix} {tool}: {what} = {verdict}")
    for tool in tools:
        samples = ratios.get(f"{tool} restore_cpu")
        if samples:
            lines.append(f"incremental {prefix} {tool}: restore CPU (user + system) full + 2 incrementals / a full = "
                         f"{statistics.median(samples):.3f} (wall time is what the target counts; CPU is the "
                         f"less noisy view on a shared machine)")
    return lines


def _median(res, section: str, case: str, tool: str, key: str = "") -> float | None:
    row = res.rows.get((section, case, tool))
    if row is None:
        return None
    values = row["extra"].get(key) if key else row["samples"]
    return statistics.median(values) if values else None


def _backup_cell(res, section: str, prefix: str, step: str, tool: str) -> str:
    case = f"{prefix} {step} backup"
    t, mb = _median(res, section, case, tool), _median(res, section, case, tool, "stored_MB")
    if t is None:
        return "-"
    if step == "full":
        return f"{t:.2f} s, {mb:.1f} MB"
    tp = _median(res, section, case, tool, "time_pct_of_full")
    bp = _median(res, section, case, tool, "bytes_pct_of_full")
    return f"{t:.2f} s ({tp:.0f}%), {mb:.2f} MB ({bp:.1f}%)"


def summary(res, section: str, case_prefix: str) -> str:
    """Markdown: one row per (PostgreSQL and change, tool), medians; percentages and x are the medians
    of the paired ratios against the same tool's full."""
    head = ["PostgreSQL, change", "tool", "full", "incr 1 (% of full)", "incr 2 (% of full)",
            "restore full", "restore full + 2 incr"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    prefixes = []
    for (sec, case, _tool) in res.order:
        if sec == section and case.startswith(case_prefix) and case.endswith(" full backup"):
            p = case[: -len(" full backup")]
            if p not in prefixes:
                prefixes.append(p)
    for p in prefixes:
        tools = [k[2] for k in res.order if k[0] == section and k[1] == f"{p} full backup"]
        for tool in tools:
            rf = _median(res, section, f"{p} restore full", f"{tool} full")
            rc = _median(res, section, f"{p} restore chain", f"{tool} chain")
            x = _median(res, section, f"{p} restore chain", f"{tool} chain", "x_of_full")
            cx = _median(res, section, f"{p} restore chain", f"{tool} chain", "cpu_x_of_full")
            cells = [p, tool] + [_backup_cell(res, section, p, s, tool) for s in ("full", "incr1", "incr2")]
            cells += [f"{rf:.2f} s" if rf is not None else "-",
                      (f"{rc:.2f} s ({x:.2f}x" + (f"; CPU {cx:.2f}x)" if cx is not None else ")"))
                      if rc is not None else "-"]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
