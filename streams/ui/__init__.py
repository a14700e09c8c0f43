"""The web UI (``kflow ui``, docs/ui.md): server-rendered pages and a JSON API over the client and the ops functions
(runs, a run's timeline and actions, schedules, dead letters, a dashboard). Needs aiohttp (``pip install
'kflow[ui]'``); only the CLI imports it."""

from streams.ui._app import HostAllowList, UiError, UiServer, build_app, split_host, status_of
from streams.ui._context import UiContext
from streams.ui._params import BadRequest, NotFound, RunFilters, run_filters
from streams.ui._stats import StatsCollector
from streams.ui._timeline import Lane, Marker, Segment, Timeline, timeline_of
from streams.ui._windows import LATENCY_BOUNDS_MS, Percentiles, Windows, quantile

__all__ = [
    "HostAllowList",
    "split_host",
    "UiServer",
    "UiError",
    "UiContext",
    "build_app",
    "status_of",
    "BadRequest",
    "NotFound",
    "RunFilters",
    "run_filters",
    "StatsCollector",
    "Windows",
    "Percentiles",
    "LATENCY_BOUNDS_MS",
    "quantile",
    "Timeline",
    "Lane",
    "Segment",
    "Marker",
    "timeline_of",
]
