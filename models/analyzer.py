"""Offline analysis of many interleaved sessions: one :class:`SessionEngine` per session.

The analyzer runs the very same engine as the streaming workers, so its report for a session
equals the one the pipeline publishes from the same accepted events (METRICS.md preamble; §9
"Final and live": the final report depends only on the set of accepted events). Two orderings:

- ``whole`` (a file read as a whole, §9): no event is late, whatever its place in the input
  (per-participant blocks, per-session blocks, shuffled). Every event is held until the end of
  input and applied in the engine's canonical order, so memory grows with the input.
- ``stream``: input order with the session's lateness bound, exactly as a streaming worker
  takes its partition (``rapport analyze --as-stream``; the pipeline tests' reference).

Sessions are closed at the end of input: with their ``session.end`` if one came, otherwise as
idle (``D`` ends at the last speech offset, §1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Literal

from models.classified import Rejection
from models.config import MAX_SETTING, EngineConfig
from models.errors import ValidationError
from models.events import Event
from models.session import SessionEngine


@dataclass(frozen=True, slots=True)
class Problem:
    """An input rejected with the field and the reason; ``tag`` locates it (a line number)."""

    tag: Any
    session_id: str | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"line {self.tag}: " if self.tag is not None else ""
        session = f"session {self.session_id}: " if self.session_id else ""
        return f"{where}{session}{self.field}: {self.reason}"


MAX_KEPT_PROBLEMS = 10_000

Ordering = Literal["whole", "stream"]
# The lateness bound of ``whole`` ordering: the largest valid session-clock time (§9 times are
# 0..2**53 - 1 ms), so the horizon (newest time minus the bound) never passes above 0: nothing
# is ever late, and nothing is applied before the end of input.
UNBOUNDED_LATENESS_MS = MAX_SETTING


class Analyzer:
    """Routes events to per-session engines; collects rejections and final reports."""

    def __init__(
        self,
        config: EngineConfig | None = None,
        *,
        advance_step_ms: int = 10_000,
        ordering: Ordering = "stream",
    ):
        config = config or EngineConfig()
        if ordering == "whole":
            config = replace(config, allowed_lateness_ms=UNBOUNDED_LATENESS_MS)
        elif ordering != "stream":
            raise ValueError(f"ordering must be 'whole' or 'stream', not {ordering!r}")
        self.config = config
        self.ordering = ordering
        self._step = advance_step_ms
        self._engines: dict[str, SessionEngine] = {}
        # The first problems are kept for display; all are counted (bounded memory on a file
        # that is wrong throughout).
        self.problems: list[Problem] = []
        self.problem_count = 0
        self.accepted = 0
        self.duplicates = 0

    def feed(self, event: Event, tag: Any = None) -> bool:
        """Give one parsed event to its session. Returns ``False`` when it was rejected."""
        engine = self._engines.get(event.session_id)
        if engine is None:
            engine = SessionEngine(event.session_id, self.config, advance_step_ms=self._step)
            self._engines[event.session_id] = engine
        try:
            accepted = engine.ingest(event, tag)
        except ValidationError as error:
            self._problem(Problem(tag, event.session_id, error.field, error.reason))
            return False
        if accepted:
            self.accepted += 1
        else:
            self.duplicates += 1
        self._collect(engine)
        return True

    def reject(self, tag: Any, error: ValidationError, session_id: str | None = None) -> None:
        """Record an input that failed before reaching a session (e.g. unparseable)."""
        self._problem(Problem(tag, session_id, error.field, error.reason))

    @property
    def sessions(self) -> int:
        return len(self._engines)

    def finish_all(self) -> Iterator[dict[str, Any]]:
        """Close every session (in order of first appearance) and yield its final report.
        A session that cannot be reported (no ``session.start``) becomes a problem."""
        for session_id, engine in self._engines.items():
            try:
                report = engine.finish()
            except ValidationError as error:
                self._collect(engine)
                self._problem(Problem(None, session_id, error.field, error.reason))
                continue
            self._collect(engine)
            yield report
        self._engines.clear()

    def _collect(self, engine: SessionEngine) -> None:
        for output in engine.drain():
            if isinstance(output, Rejection):
                error = output.error
                self._problem(Problem(output.tag, engine.session_id, error.field, error.reason))

    def _problem(self, problem: Problem) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_KEPT_PROBLEMS:
            self.problems.append(problem)
