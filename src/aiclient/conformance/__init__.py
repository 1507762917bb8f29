"""`ai-client test`: the conformance suite (`suite`), the wire contracts it checks
(`contracts`) and the SSE parser they read (`sse`). Importing the package stays cheap:
requests is imported only when the suite runs."""

from aiclient.conformance.contracts import (
    FINISH_REASONS,
    STOP_REASONS,
    StreamReport,
    ToolCall,
    anthropic_error_problems,
    anthropic_message_problems,
    check_anthropic_stream,
    check_openai_stream,
    openai_completion_problems,
)
from aiclient.conformance.sse import SseEvent, SseParser, parse_sse
from aiclient.conformance.suite import (
    CHECKS,
    CheckResult,
    Performance,
    Status,
    SuiteResult,
    _status_detail,
    normalize_base_url,
    run_suite,
)

__all__ = [
    "CHECKS", "FINISH_REASONS", "STOP_REASONS", "CheckResult", "Performance", "SseEvent",
    "SseParser", "Status", "StreamReport", "SuiteResult", "ToolCall", "_status_detail",
    "anthropic_error_problems", "anthropic_message_problems", "check_anthropic_stream",
    "check_openai_stream", "normalize_base_url", "openai_completion_problems", "parse_sse",
    "run_suite",
]
