"""How the terminal client tells why a job failed (docs/reference/cli.md#asya-call).

From the job's ``error_details``: one headline (``Failed at step 'parse': KeyError:
'missing_key'``), then the handler's own frame (file:line and its source line); verbose adds the
whole traceback. A job without details (an older gateway) shows its ``error`` text as before.
"""

from __future__ import annotations

from typing import Any

from asya.client.tracebacks import handler_frame


def _branch_text(branch: Any) -> str:
    if not isinstance(branch, list):
        return ""
    parts = [
        f"{item.get('index')}/{item.get('count')}" for item in branch if isinstance(item, dict)
    ]
    return f" (branch {'.'.join(parts)})" if parts else ""


def headline(job: dict[str, Any]) -> str:
    """``Failed at step 'parse': KeyError: 'missing_key'`` (``Failed: <error>`` without details)."""
    status = job.get("status") or "Failed"
    error = str(job.get("error") or "no error message")
    details = job.get("error_details")
    if not isinstance(details, dict):
        return f"{status}: {error}"
    step = details.get("failed_step")
    where = f" at step {step!r}" if step else ""
    where += _branch_text(details.get("branch"))
    kind = details.get("type") or details.get("code")
    message = details.get("message")
    cause = f"{kind}: {message}" if kind and message else (message or kind or error)
    return f"{status}{where}: {cause}"


def failure_lines(job: dict[str, Any], *, verbose: bool = False) -> list[str]:
    """The headline and what follows it; each line without its newline."""
    lines = [f"job {job.get('id')} {headline(job)}"]
    details = job.get("error_details")
    if not isinstance(details, dict):
        return lines
    failed_branches = details.get("failed_branches")
    if isinstance(failed_branches, list) and len(failed_branches) > 1:
        lines.append(f"  {job.get('error')}")
    trace = details.get("traceback")
    trace = trace if isinstance(trace, str) and trace.strip() else None
    if verbose and trace:
        lines.extend("  " + line for line in trace.rstrip("\n").splitlines())
        return lines
    frame = handler_frame(trace)
    if frame is not None:
        lines.append(f"  at {frame.location}, in {frame.function}")
        if frame.source:
            lines.append(f"    {frame.source}")
    if trace:
        lines.append("  (the whole traceback: -v / --traceback)")
    return lines
