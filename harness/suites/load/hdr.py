"""Latency histograms (HDR, 3 significant digits, 1 µs to 1 h) that merge across processes.

Values are recorded in microseconds; summaries are in milliseconds. Unlike Locust's own
response-time buckets (rounded to 2 significant digits above 100 ms), an HDR histogram keeps
every value within 0.1 %, and its compressed encoding travels between processes.
"""

from __future__ import annotations

from typing import Any

from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}


def new_histogram() -> Any:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


class HdrSet:
    """Named histograms; `record_ns` takes a duration in nanoseconds."""

    def __init__(self) -> None:
        self.histograms: dict[str, Any] = {}

    def record_ns(self, name: str, duration_ns: int) -> None:
        """Record a duration (ns, kept in µs); the same bucket as HdrHistogram.record_value.

        Inlined index arithmetic (`int.bit_length` instead of hdrh's string-based count of
        leading zeros): this runs once or twice per request on the load generator's hot path.
        """
        histogram = self.histograms.get(name)
        if histogram is None:
            histogram = self.histograms[name] = new_histogram()
        value = duration_ns // 1000
        if value < LOWEST_US:
            value = LOWEST_US
        elif value > HIGHEST_US:
            value = HIGHEST_US
        half = histogram.sub_bucket_half_count_magnitude
        unit = histogram.unit_magnitude
        bucket = (value | histogram.sub_bucket_mask).bit_length() - unit - half - 1
        index = ((bucket + 1) << half) + (value >> (bucket + unit)) - histogram.sub_bucket_half_count
        histogram.counts[index] += 1
        histogram.total_count += 1
        if value < histogram.min_value:
            histogram.min_value = value
        if value > histogram.max_value:
            histogram.max_value = value

    def record_ms(self, name: str, duration_ms: float) -> None:
        self.record_ns(name, int(duration_ms * 1e6))

    def encode(self) -> dict[str, str]:
        """Compressed, base64 form of every non-empty histogram (to send or store)."""
        out: dict[str, str] = {}
        for name, histogram in self.histograms.items():
            if histogram.get_total_count():
                encoded = histogram.encode()
                out[name] = encoded.decode("ascii") if isinstance(encoded, bytes) else str(encoded)
        return out

    def merge_encoded(self, encoded: dict[str, str]) -> None:
        for name, text in encoded.items():
            histogram = self.histograms.get(name)
            if histogram is None:
                histogram = self.histograms[name] = new_histogram()
            histogram.decode_and_add(text.encode("ascii"))

    def merge(self, other: HdrSet) -> None:
        for name, histogram in other.histograms.items():
            mine = self.histograms.get(name)
            if mine is None:
                mine = self.histograms[name] = new_histogram()
            mine.add(histogram)

    def reset(self) -> None:
        self.histograms.clear()

    def count(self, name: str) -> int:
        histogram = self.histograms.get(name)
        return int(histogram.get_total_count()) if histogram is not None else 0

    def summary(self, name: str) -> dict[str, Any] | None:
        histogram = self.histograms.get(name)
        if histogram is None or not histogram.get_total_count():
            return None
        return summarize(histogram)

    def summaries(self) -> dict[str, dict[str, Any]]:
        return {name: s for name in sorted(self.histograms)
                if (s := self.summary(name)) is not None}

    @classmethod
    def decode(cls, encoded: dict[str, str]) -> HdrSet:
        out = cls()
        out.merge_encoded(encoded)
        return out


def _ms(value_us: float) -> float:
    return round(value_us / 1000.0, 3)


def summarize(histogram: Any) -> dict[str, Any]:
    """count, min, mean, the usual percentiles and max, in milliseconds (one pass over the counts).

    Same rules as HdrHistogram: a percentile is the highest value equivalent to the bucket
    where the cumulative count reaches it; the mean uses each bucket's median value.
    """
    total = int(histogram.get_total_count())
    counts = histogram.counts
    buckets = [(index, int(count)) for index, count in enumerate(counts) if count]
    targets = sorted((max(1, int(q / 100.0 * total + 0.5)), label) for label, q in PERCENTILES.items())
    out: dict[str, Any] = {"count": total, "min": _ms(histogram.get_min_value())}
    weighted = 0.0
    seen = 0
    position = 0
    found: dict[str, float] = {}
    for index, count in buckets:
        value = histogram.get_value_from_index(index)
        low = histogram.get_lowest_equivalent_value(value)
        high = histogram.get_highest_equivalent_value(value)
        weighted += (low + high + 1) / 2.0 * count
        seen += count
        while position < len(targets) and seen >= targets[position][0]:
            found[targets[position][1]] = histogram.get_highest_equivalent_value(value)
            position += 1
    out["mean"] = _ms(weighted / total) if total else 0.0
    for label in PERCENTILES:
        out[label] = _ms(found.get(label, 0.0))
    out["max"] = _ms(histogram.get_max_value())
    return out
