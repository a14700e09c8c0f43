"""A run's timeline (``streams.ui._timeline``) as HTML: one row per lane, its segments placed in percent of the run's
span (no script needed), an axis with offsets from the run's start, markers on it."""

from __future__ import annotations

from streams.ops import format_duration
from streams.ui._html import esc, run_link
from streams.ui._timeline import Lane, Segment, Timeline

_TICKS = 5
_MIN_WIDTH = 0.4  # percent: a segment of a few ms stays visible
MAX_LANES = 300
"""Calls the timeline shows (the latest); ``/api/runs/{id}/timeline`` has them all."""


def timeline_html(timeline: Timeline) -> str:
    """The timeline, or a note when the history has no calls to show."""
    if not timeline.lanes and not timeline.markers:
        return '<p class="empty">no steps, sleeps, hooks or children yet</p>'
    span = max(1, timeline.end - timeline.start)
    ticks = "".join(
        f'<span class="tick" style="left:{100 * i / _TICKS:.2f}%">+{esc(format_duration(span * i // _TICKS))}</span>'
        for i in range(_TICKS + 1)
    )
    markers = "".join(
        f'<span class="marker" style="left:{_pct(m.at - timeline.start, span):.2f}%" title="{esc(m.label)}"></span>'
        for m in timeline.markers
    )
    axis = f'<div class="lane axis"><div class="lane-title"></div><div class="track">{ticks}{markers}</div></div>'
    shown = timeline.lanes[-MAX_LANES:]
    lanes = "".join(_lane(lane, timeline, span) for lane in shown)
    state = "finished" if timeline.finished else "running"
    more = len(timeline.lanes) - len(shown)
    note = f'<p class="note">the last {MAX_LANES} of {len(timeline.lanes)} calls</p>' if more else ""
    return f'{note}<div class="timeline" id="timeline" data-state="{state}">{axis}{lanes}</div>'


def _lane(lane: Lane, timeline: Timeline, span: int) -> str:
    extra = ""
    if lane.token:
        extra = f' <code class="token">{esc(lane.token)}</code>'
    elif lane.child_run_id:
        extra = " " + run_link(lane.child_run_id, "child-link")
    attempts = sum(1 for s in lane.segments if s.state != "retry") if lane.kind == "step" else 0
    count = f' <small class="attempts">{attempts} attempts</small>' if attempts > 1 else ""
    title = (
        f'<div class="lane-title"><span class="kind">{esc(lane.kind)}</span> <b>{esc(lane.title)}</b>'
        f"<small> #{lane.position}</small>{count}{extra}</div>"
    )
    segments = "".join(_segment(s, timeline, span) for s in lane.segments)
    return (
        f'<div class="lane lane-{esc(lane.kind)}" data-kind="{esc(lane.kind)}" data-position="{lane.position}" '
        f'data-title="{esc(lane.title)}">{title}<div class="track">{segments}</div></div>'
    )


def _segment(segment: Segment, timeline: Timeline, span: int) -> str:
    end = segment.end if segment.end is not None else timeline.end
    left = _pct(segment.start - timeline.start, span)
    width = max(_MIN_WIDTH, min(100 - left, _pct(end - segment.start, span)))
    took = format_duration(max(0, end - segment.start)) + ("" if segment.end is not None else " so far")
    tip = f"{segment.label}: {segment.state}, {took}"
    return (
        f'<span class="seg seg-{esc(segment.state)}" data-state="{esc(segment.state)}" '
        f'style="left:{left:.2f}%;width:{width:.2f}%" title="{esc(tip)}">{esc(segment.label)}</span>'
    )


def _pct(offset: int, span: int) -> float:
    return max(0.0, min(100.0, 100 * offset / span))
