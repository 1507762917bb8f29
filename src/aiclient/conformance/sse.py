"""Server-Sent Events as the OpenAI and Anthropic streams send them: an incremental parser
that keeps each event's raw lines and arrival time (the contract checks need both)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SseEvent:
    event: str | None  # the `event:` field, if any
    data: str  # `data:` lines joined with newlines
    lines: tuple[str, ...]  # the event's field lines exactly as received
    at: float = 0.0  # seconds from sending the request to receiving this event


class SseParser:
    """Incremental SSE parser: feed bytes as they arrive, get whole events back."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[str] = []

    def feed(self, data: bytes, at: float = 0.0) -> list[SseEvent]:
        self._buffer += data
        events: list[SseEvent] = []
        while (end := self._buffer.find(b"\n")) >= 0:
            line = self._buffer[:end].rstrip(b"\r").decode("utf-8", "replace")
            self._buffer = self._buffer[end + 1:]
            if line == "":
                if self._lines:
                    events.append(self._dispatch(at))
            elif not line.startswith(":"):  # ":" starts a comment
                self._lines.append(line)
        return events

    @property
    def pending(self) -> bool:
        """True when the input so far ends in the middle of an event."""
        return bool(self._lines) or bool(self._buffer.strip())

    def _dispatch(self, at: float) -> SseEvent:
        name: str | None = None
        data: list[str] = []
        for line in self._lines:
            key, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if key == "event":
                name = value
            elif key == "data":
                data.append(value)
        event = SseEvent(name, "\n".join(data), tuple(self._lines), at)
        self._lines = []
        return event


def parse_sse(body: bytes) -> tuple[list[SseEvent], bool]:
    """All events of a complete body, and whether it ended in the middle of an event."""
    parser = SseParser()
    events = parser.feed(body)
    return events, parser.pending


