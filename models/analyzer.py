"""Offline analysis of many interleaved sessions: one :class:`SessionEngine` per session.

The analyzer runs the very same engine as the streaming workers, fed in input order, so its
report for a session equals the one the pipeline publishes from the same events (METRICS.md
preamble). Sessions are closed at the end of input: with their ``session.end`` if one came,
otherwise as idle (``D`` ends at the last speech offset, §1).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from models.classified import Rejection
from models.config import EngineConfig
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


class Analyzer:
    """Routes events to per-session engines; collects rejections and final reports."""

    def __init__(self, config: EngineConfig | None = None, *, advance_step_ms: int = 10_000):
        self.config = config or EngineConfig()
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
