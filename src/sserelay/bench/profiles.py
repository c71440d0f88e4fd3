"""The loads the benchmark runs: the issue's two (``full``) and a tiny one for its smoke test."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PROFILES", "Load", "Profile"]


@dataclass(frozen=True, slots=True)
class Load:
    """K concurrent streams of N stamped tokens, each at R tokens/s."""

    streams: int
    tokens: int
    rate: float

    @property
    def label(self) -> str:
        return f"{self.streams} x {self.tokens} at {self.rate:g} tok/s"

    @property
    def scenario(self) -> str:
        """The upstream's script: paced tokens, each stamped with its send time."""
        return f"tokens={self.tokens}; rate={self.rate:g}; stamp=1"

    @property
    def spread(self) -> float:
        """Seconds over which the streams' starts are spread: one token interval, so that
        their tokens interleave instead of arriving in bursts of K (see loadgen.run_load)."""
        return 1 / self.rate

    @property
    def timeout(self) -> float:
        """Seconds one stream may take: its own duration, plus slack for a saturated relay."""
        return self.tokens / self.rate * 3 + 30


@dataclass(frozen=True, slots=True)
class Profile:
    loads: tuple[Load, ...]
    # The capacity search: streams of `ramp_tokens` at `ramp_rate`, K rising until the p99
    # added latency passes the limit. Short streams keep each step to a few seconds.
    ramp_streams: tuple[int, ...]
    ramp_tokens: int
    ramp_rate: float
    p99_limit_ms: float = 10.0
    repeats: int = 1  # runs per load and target; the report shows per-figure medians


PROFILES: dict[str, Profile] = {
    # The targets. The ramp stops at 1000 streams: beyond that the upstream and
    # the load generator, Python processes on the same two cores, saturate before a relay does.
    "full": Profile(
        loads=(Load(100, 100, 50), Load(500, 100, 20)),
        ramp_streams=(50, 100, 250, 500, 1000),
        ramp_tokens=40,
        ramp_rate=20,
        repeats=3,
    ),
    "smoke": Profile(
        loads=(Load(5, 10, 50),),
        ramp_streams=(2, 5),
        ramp_tokens=5,
        ramp_rate=50,
    ),
}
