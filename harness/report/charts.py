"""The report's charts: matplotlib figures rendered to inline SVG (no JavaScript, no network).

Each chart is drawn only when its data exists; otherwise it carries a short note saying why not.
Series are aggregated (time bins, percentiles) or decimated (min/max per bin) first, so the SVG
stays small however long the history is.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from harness.contract import Lifecycle
from harness.report.stats import CHANNEL_ORDER, CLASSES, STREAM_CHANNELS, HistoryStats

LATENCY_BINS = 40
THROUGHPUT_BINS = 60
RATE_MAX_POINTS = 1500  # a step line with more points than this is drawn as min/max bands
RATE_BINS = 500
MAX_MARKERS = 2000
_RC: dict[str, Any] = {
    "svg.fonttype": "none",  # text stays text: smaller, selectable, uses the page's fonts
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "legend.fontsize": 8,
    "legend.frameon": False,
}
_CLASS_COLORS = {"2xx": "#34a853", "3xx": "#4285f4", "4xx": "#fbbc04", "429": "#d93025",
                 "5xx": "#8e24aa", "no answer": "#5f6368"}
_TERMINAL_COLORS = {"completed": "#34a853", "failed": "#f29900", "cancelled": "#80868b",
                    "rejected": "#8e24aa"}
RED = "#d93025"


@dataclass
class Chart:
    """One chart of the page: its element id, title, SVG (None when there is no data) and a note."""

    id: str
    title: str
    svg: str | None
    note: str


@contextmanager
def _style(**overrides: Any) -> Iterator[None]:
    """The charts' rcParams (matplotlib types rc keys as literals; these are checked at run time)."""
    with matplotlib.rc_context(cast(Any, {**_RC, **overrides})):
        yield


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), layout="constrained")


def _svg(fig: Figure, salt: str) -> str:
    buffer = io.StringIO()
    # The salt makes the ids inside each SVG (clip paths) distinct across the charts of one page.
    with _style(**{"svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg"):]


def _channel_color(name: str) -> str:
    index = CHANNEL_ORDER.index(name) if name in CHANNEL_ORDER else len(CHANNEL_ORDER)
    return f"C{index % 10}"


def _time_axis(stats: HistoryStats) -> tuple[float, float, str]:
    """(t0 epoch s, span s, x label) shared by every time chart."""
    t0 = stats.t_min
    span = max(stats.t_max - t0, 1e-3)
    start = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return t0, span, f"seconds since the first request ({start})"


Band = tuple[str, float, float]  # suite name, start and end (epoch seconds)


def _draw_bands(axes: Sequence[Any], bands: Sequence[Band], t0: float, span: float) -> None:
    """Shade each suite's time on every axis and name it on the top one, so that the rate-limit
    suite's expected 429s or the load suite's peak read as what they are, not as an incident."""
    for index, (name, start, end) in enumerate(bands):
        left, right = max(start - t0, 0.0), min(end - t0, span)
        if right <= left:
            continue
        for ax in axes:
            ax.axvspan(left, right, color="#888888", alpha=0.07 if index % 2 else 0.14, linewidth=0,
                       zorder=0)
        axes[0].text((left + right) / 2, 1.0, name, transform=axes[0].get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=7, color="#555555", clip_on=True)


def _bins(x: np.ndarray[Any, Any], span: float, count: int) -> np.ndarray[Any, Any]:
    return np.clip((x / span * count).astype(np.int64), 0, count - 1)


def _floats(values: Any) -> np.ndarray[Any, Any]:
    return np.frombuffer(values, dtype=np.float64).copy()


def _ints(values: Any, dtype: Any) -> np.ndarray[Any, Any]:
    return np.frombuffer(values, dtype=dtype).copy()


def latency_chart(stats: HistoryStats, bands: Sequence[Band] = ()) -> Chart:
    chart_id, title = "chart-latency", "Latency percentiles over time, per channel"
    if stats.requests == 0:
        return Chart(chart_id, title, None, "No data: the run recorded no observations.")
    latency = _floats(stats.req_latency_ms)
    answered = ~np.isnan(latency)
    if not answered.any():
        return Chart(chart_id, title, None, "No data: no request got an answer.")
    t0, span, xlabel = _time_axis(stats)
    x = _floats(stats.req_time) - t0
    channels = _ints(stats.req_channel, np.int16)
    bins = _bins(x, span, LATENCY_BINS)
    width = span / LATENCY_BINS
    with _style():
        fig = _figure(9.5, 6.2)
        axes = fig.subplots(3, 1, sharex=True)
        names = sorted(range(len(stats.channels)),
                       key=lambda c: (CHANNEL_ORDER.index(stats.channels[c])
                                      if stats.channels[c] in CHANNEL_ORDER else 99))
        lowest, highest = np.inf, 0.0
        drawn = 0
        for code in names:
            mask = answered & (channels == code)
            if not mask.any():
                continue
            order = np.argsort(bins[mask], kind="stable")
            b, values = bins[mask][order], latency[mask][order]
            used, starts = np.unique(b, return_index=True)
            pcts = np.array([np.percentile(part, [50, 95, 99]) for part in np.split(values, starts[1:])])
            centers = (used + 0.5) * width
            name = stats.channels[code]
            label = f"{name} (first event)" if name in STREAM_CHANNELS else name
            label += f", n={int(mask.sum()):,}"
            for row, ax in enumerate(axes):
                ax.plot(centers, pcts[:, row], color=_channel_color(name), marker="o",
                        markersize=2.5, linewidth=1.2, label=label)
            lowest = min(lowest, float(pcts.min()))
            highest = max(highest, float(pcts.max()))
            drawn += 1
        for ax, name in zip(axes, ("p50", "p95", "p99"), strict=True):
            ax.set_ylabel(f"{name} (ms)")
            if lowest > 0 and highest / lowest > 30:
                ax.set_yscale("log")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axes[0].set_title(f"Latency per {width:.3g} s bin (answered requests; streams: time "
                          "to the first event)")
        axes[-1].set_xlabel(xlabel)
        axes[-1].set_xlim(0, span)
        _draw_bands(axes, bands, t0, span)
    note = (f"{drawn} channel(s), {int(answered.sum()):,} answered requests in "
            f"{LATENCY_BINS} time bins.")
    return Chart(chart_id, title, _svg(fig, chart_id), note)


def throughput_chart(stats: HistoryStats, bands: Sequence[Band] = ()) -> Chart:
    chart_id, title = "chart-throughput", "Throughput (requests per second by answer class)"
    if stats.requests == 0:
        return Chart(chart_id, title, None, "No data: the run recorded no observations.")
    t0, span, xlabel = _time_axis(stats)
    x = _floats(stats.req_time) - t0
    classes = _ints(stats.req_class, np.int8)
    bins = _bins(x, span, THROUGHPUT_BINS)
    width = span / THROUGHPUT_BINS
    centers = (np.arange(THROUGHPUT_BINS) + 0.5) * width
    rates, labels, colors = [], [], []
    for index, name in enumerate(CLASSES):
        mask = classes == index
        if mask.any():
            rates.append(np.bincount(bins[mask], minlength=THROUGHPUT_BINS) / width)
            labels.append(f"{name} ({int(mask.sum()):,})")
            colors.append(_CLASS_COLORS[name])
    with _style():
        fig = _figure(9.5, 3.4)
        ax = fig.subplots()
        ax.stackplot(centers, *rates, labels=labels, colors=colors, step="mid", alpha=0.85)
        ax.set_xlim(0, span)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("requests/s")
        ax.set_xlabel(xlabel)
        ax.set_title(f"{stats.requests:,} requests over {span:.1f} s, "
                     f"mean {stats.requests / span:,.1f}/s (by completion time, {width:.3g} s bins)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        _draw_bands([ax], bands, t0, span)
    return Chart(chart_id, title, _svg(fig, chart_id),
                 "Stream connections count once; a request with no answer counts at its send time.")


def _decimate(t: np.ndarray[Any, Any], r: np.ndarray[Any, Any], span: float
              ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Min and max of r per time bin (t sorted): keeps every dip and every peak visible."""
    bins = _bins(t, span, RATE_BINS)
    used, starts = np.unique(bins, return_index=True)
    return ((used + 0.5) * (span / RATE_BINS), np.minimum.reduceat(r, starts),
            np.maximum.reduceat(r, starts))


def rate_limit_chart(stats: HistoryStats, bands: Sequence[Band] = ()) -> Chart:
    chart_id, title = "chart-ratelimit", "Rate-limit Remaining over time, with the 429s"
    n429 = stats.rejected
    if not stats.rate and n429 == 0:
        return Chart(chart_id, title, None, "No data: no answer carried X-RateLimit-Remaining and "
                     "none was a 429.")
    t0, span, xlabel = _time_axis(stats)
    groups = sorted({group for group, _key in stats.rate} | set(stats.r429))
    with _style():
        fig = _figure(9.5, 1.0 + 2.1 * len(groups))
        axes = fig.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
        color_of = {key: f"C{i % 10}" for i, key in enumerate(sorted({k for _g, k in stats.rate}))}
        for ax, group in zip(axes, groups, strict=True):
            top = 0
            for (series_group, key), series in sorted(stats.rate.items()):
                if series_group != group:
                    continue
                t = _floats(series.times) - t0
                r = _ints(series.remaining, np.int64)
                order = np.argsort(t, kind="stable")
                t, r = t[order], r[order]
                color = color_of[key]
                label = f"key {key} ({len(t):,} answers)"
                if len(t) <= RATE_MAX_POINTS:
                    ax.step(t, r, where="post", color=color, linewidth=1.1, label=label)
                else:
                    centers, low, high = _decimate(t, r, span)
                    ax.fill_between(centers, low, high, step="mid", color=color, alpha=0.3,
                                    linewidth=0)
                    ax.step(centers, low, where="mid", color=color, linewidth=1.0,
                            label=label + ", min/max per bin")
                top = max(top, int(r.max()))
            rejected = stats.r429.get(group)
            if rejected is not None:
                t = _floats(rejected.times) - t0
                y = _ints(rejected.remaining, np.int64)
                y = np.where(y < 0, 0, y)
                count = len(t)
                if count > MAX_MARKERS:
                    pick = np.linspace(0, count - 1, MAX_MARKERS).astype(np.int64)
                    t, y = t[pick], y[pick]
                ax.scatter(t, y, marker="x", color=RED, s=22, linewidths=1.2, zorder=5,
                           label=f"429 Too Many Requests ({count:,})")
                top = max(top, int(y.max()) if len(y) else 0)
            ax.set_ylim(-max(top, 1) * 0.06, max(top, 1) * 1.08)
            ax.set_ylabel("Remaining")
            ax.set_title(f"group {group}" if group != "?" else "429s that named no group "
                         "(no Remaining header)", loc="left")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        axes[-1].set_xlim(0, span)
        axes[-1].set_xlabel(xlabel)
        _draw_bands(list(axes), bands, t0, span)
    return Chart(chart_id, title, _svg(fig, chart_id),
                 f"X-RateLimit-Remaining per limit group and key; {n429:,} answers with 429 (red x; "
                 "one without the header is drawn at 0).")


def transitions_chart(stats: HistoryStats, lifecycle: Lifecycle | None) -> Chart:
    chart_id, title = "chart-transitions", "Observed status transitions against the allowed ones"
    if not stats.transitions:
        why = ("no observer saw a task change status" if stats.repeats else
               "no observation carried a task status")
        return Chart(chart_id, title, None, f"No data: {why}.")
    observed = {s for pair in stats.transitions for s in pair}
    known = dict(lifecycle.statuses) if lifecycle else {}
    statuses = sorted(set(known) | observed)
    index = {s: i for i, s in enumerate(statuses)}
    n = len(statuses)
    colors = {"allowed": (0.90, 0.96, 0.92), "forbidden": (0.95, 0.95, 0.96),
              "same": (1.0, 1.0, 1.0), "seen": (0.51, 0.79, 0.59), "bad": (0.85, 0.19, 0.15),
              "unknown": (0.55, 0.71, 0.97)}
    image = np.ones((n, n, 3))
    for a in statuses:
        for b in statuses:
            if a == b:
                kind = "same"
            elif lifecycle is None:
                kind = "forbidden"
            else:
                kind = "allowed" if lifecycle.may_follow(a, b) else "forbidden"
            image[index[a], index[b]] = colors[kind]
    forbidden = 0
    for (a, b), count in stats.transitions.items():
        if lifecycle is None:
            image[index[a], index[b]] = colors["unknown"]
        elif lifecycle.may_follow(a, b):
            image[index[a], index[b]] = colors["seen"]
        else:
            image[index[a], index[b]] = colors["bad"]
            forbidden += count
    labels = [f"{s} {known.get(s, '(not in contract)')}" for s in statuses]
    with _style(**{"axes.grid": False}):
        size = max(5.5, 0.42 * n + 2.5)
        fig = _figure(size + 2.2, size)
        ax: Axes = fig.subplots()
        ax.imshow(image, interpolation="nearest")
        for (a, b), count in stats.transitions.items():
            bad = lifecycle is not None and not lifecycle.may_follow(a, b)
            ax.text(index[b], index[a], f"{count:,}", ha="center", va="center", fontsize=7,
                    color="white" if bad else "black", fontweight="bold" if bad else "normal")
        ax.set_xticks(range(n), labels, rotation=60, ha="right", rotation_mode="anchor")
        ax.set_yticks(range(n), labels)
        ax.set_xticks(np.arange(-0.5, n), minor=True)
        ax.set_yticks(np.arange(-0.5, n), minor=True)
        ax.grid(which="minor", color="white", linewidth=1.0)
        ax.tick_params(which="minor", length=0)
        ax.set_ylabel("earlier status (from)")
        ax.set_xlabel("later status (to)")
        total = sum(stats.transitions.values())
        ax.set_title(f"{total:,} status changes seen by one observer of one task; "
                     f"{forbidden:,} forbidden")
        legend = [Patch(color=colors["allowed"], label="allowed (not seen)"),
                  Patch(color=colors["seen"], label="allowed, seen"),
                  Patch(color=colors["forbidden"], label="not allowed"),
                  Patch(color=colors["bad"], label="not allowed, SEEN")]
        if lifecycle is None:
            legend = [Patch(color=colors["unknown"], label="seen (no lifecycle to judge)")]
        ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    note = (f"Counts of consecutive distinct statuses per (observer, task); "
            f"{stats.repeats:,} repeats of the same status not drawn.")
    if stats.odd_statuses:
        note += f" Observations with a status that is not an integer: {stats.odd_statuses:,}."
    if lifecycle is None:
        note += " The lifecycle contract could not be loaded, so nothing is judged."
    return Chart(chart_id, title, _svg(fig, chart_id), note)


def time_to_terminal_chart(stats: HistoryStats, lifecycle: Lifecycle | None) -> Chart:
    chart_id, title = "chart-ttt", "Time to a terminal status (per task)"
    seconds, statuses, missing = stats.time_to_terminal()
    if not seconds:
        why = ("no accepted run was observed" if not stats.run_sent else
               f"none of {missing:,} accepted runs was seen reaching a terminal status")
        return Chart(chart_id, title, None, f"No data: {why}.")
    values = np.array(seconds)
    codes = np.array(statuses)
    edges = np.histogram_bin_edges(values, bins="auto")
    if len(edges) > 61:
        edges = np.linspace(values.min(), values.max(), 61)
    names = lifecycle.statuses if lifecycle else {}
    groups, labels, colors = [], [], []
    for code in sorted(set(statuses)):
        name = names.get(code, str(code))
        part = values[codes == code]
        groups.append(part)
        labels.append(f"{name} ({len(part):,})")
        colors.append(_TERMINAL_COLORS.get(name, "C0"))
    p50, p95 = np.percentile(values, [50, 95])
    with _style():
        fig = _figure(9.5, 3.6)
        ax = fig.subplots()
        ax.hist(groups, bins=edges.tolist(), stacked=True, label=labels, color=colors)
        for value, name in ((p50, "p50"), (p95, "p95")):
            ax.axvline(value, color="black", linestyle="--" if name == "p50" else ":", linewidth=1,
                       label=f"{name} {value:.3g} s")
        ax.set_xlabel("seconds from the run request to the first terminal status seen")
        ax.set_ylabel("tasks")
        ax.set_title(f"{len(values):,} tasks: p50 {p50:.3g} s, p95 {p95:.3g} s, "
                     f"max {values.max():.3g} s")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    note = f"{missing:,} accepted run(s) never seen terminal." if missing else \
        "Every accepted run was seen reaching a terminal status."
    return Chart(chart_id, title, _svg(fig, chart_id), note)


EndpointTable = tuple[str, Sequence[dict[str, Any]]]  # scenario, its per-endpoint rows


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and np.isfinite(value) and value > 0 else np.nan


def endpoint_chart(tables: Sequence[EndpointTable]) -> Chart:
    """p50 / p95 / p99 per endpoint of each load phase, and the streams' own times (a task
    stream's first event and terminal; an agent chat's first delta and turn, from the message)."""
    chart_id = "chart-endpoints"
    title = "Load latency per endpoint (p50, p95, p99; streams: first event or delta, terminal or turn)"
    rows = [(scenario, row) for scenario, table in tables for row in table if isinstance(row, dict)]
    if not rows:
        return Chart(chart_id, title, None, "No data: no load phase ran.")
    labels = [f"{scenario} · {row.get('endpoint')}" for scenario, row in rows]
    series = [("p50", "#4285f4"), ("p95", "#fbbc04"), ("p99", RED)]
    streams = [(label, row) for label, (_, row) in zip(labels, rows, strict=True)
               if "ttfe_p50" in row or "first_delta_p50" in row]
    with _style():
        fig = _figure(9.5, 1.2 + 0.32 * len(rows) + (0.9 + 0.32 * len(streams) if streams else 0))
        axes = fig.subplots(2 if streams else 1, 1, squeeze=False,
                            height_ratios=[len(rows), max(1, len(streams))] if streams else None)[:, 0]
        y = np.arange(len(rows))
        height = 0.8 / len(series)
        for index, (stat, color) in enumerate(series):
            axes[0].barh(y + index * height, [_finite(row.get(stat)) for _, row in rows], height,
                         color=color, label=stat)
        axes[0].set_yticks(y + height, labels)
        axes[0].invert_yaxis()
        axes[0].set_xscale("log")
        axes[0].set_xlabel("ms (log scale)")
        axes[0].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
        if streams:
            ys = np.arange(len(streams))
            pairs = ((("ttfe_p95", "first_delta_p95"), "#34a853", "first event / delta p95"),
                     (("terminal_p95", "turn_p95"), "#8e24aa", "terminal / turn p95"))
            for index, ((stat, agent_stat), color, legend) in enumerate(pairs):
                axes[1].barh(ys + index * 0.4, [_finite(row.get(stat, row.get(agent_stat)))
                                                for _, row in streams], 0.4, color=color, label=legend)
            axes[1].set_yticks(ys + 0.2, [label for label, _ in streams])
            axes[1].invert_yaxis()
            axes[1].set_xscale("log")
            axes[1].set_xlabel("ms from the stream's opening; agent: from the message sent (log scale)")
            axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return Chart(chart_id, title, _svg(fig, chart_id),
                 f"{len(rows)} endpoint(s) in {len(tables)} phase(s); HDR percentiles, 3 significant digits.")


def all_charts(stats: HistoryStats, lifecycle: Lifecycle | None,
               bands: Sequence[Band] = (), endpoints: Sequence[EndpointTable] = ()) -> list[Chart]:
    """Every chart; time charts shade each suite's `bands`."""
    return [latency_chart(stats, bands), throughput_chart(stats, bands),
            rate_limit_chart(stats, bands), endpoint_chart(endpoints),
            transitions_chart(stats, lifecycle), time_to_terminal_chart(stats, lifecycle)]
