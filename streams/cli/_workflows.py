"""``kflow workflows list|info -A MODULE``: the workflows, steps and declared schedules a module registers, with
their options (retries, timeouts, limits, schedules), read from the decorators' definitions."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from collections.abc import Callable

from engine import Registry, UnknownStepError, UnknownWorkflowError
from engine.runtime import DeclaredSchedule, StepDefinition, WorkflowDefinition
from streams._settings import Settings
from streams.cli._app import load_registry
from streams.cli._errors import UsageError
from streams.cli._schedule_text import describe_spec
from streams.ops import plain, table

_UNITS = (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1))


def register(groups: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``workflows`` and its sub-commands to the ``kflow`` parser."""
    workflows = groups.add_parser("workflows", help="the workflows and steps a module registers, with their options")
    commands = workflows.add_subparsers(title="workflows commands", metavar="COMMAND", parser_class=type(workflows))
    commands.required = True
    listing = commands.add_parser("list", help="every workflow and step of -A MODULE, with their options")
    listing.add_argument("-A", "--app", required=True, metavar="MODULE", help="module defining the workflows")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(handler=_list)
    info = commands.add_parser("info", help="one workflow (or step): options, parameters, schedules")
    info.add_argument("name", metavar="NAME", help="a workflow's registered name (or a step's)")
    info.add_argument("-A", "--app", required=True, metavar="MODULE", help="module defining the workflows")
    info.add_argument("--json", action="store_true", help="machine-readable output")
    info.set_defaults(handler=_info)


def _list(args: argparse.Namespace, _settings: Settings) -> int:
    registry = load_registry(args.app)
    print(json.dumps(registry_json(registry), indent=2) if args.json else registry_text(registry))
    return 0


def _info(args: argparse.Namespace, _settings: Settings) -> int:
    registry = load_registry(args.app)
    try:
        found: WorkflowDefinition | StepDefinition = registry.workflow(args.name)
    except UnknownWorkflowError as exc:
        try:
            found = registry.step(args.name)
        except UnknownStepError:
            raise UsageError(f"{exc} (nor a step of -A {args.app})") from None
    if isinstance(found, WorkflowDefinition):
        schedules = [s for s in registry.schedules.values() if s.workflow_name == found.name]
        data, text = workflow_json(found, schedules), workflow_text(found, schedules)
    else:
        data, text = step_json(found), step_text(found)
    print(json.dumps(data, indent=2) if args.json else text)
    return 0


# --- views ------------------------------------------------------------------------------------


def registry_json(registry: Registry) -> dict[str, object]:
    """``kflow workflows list --json``: ``{"workflows": [...], "steps": [...]}`` in registration order."""
    schedules = list(registry.schedules.values())
    return {
        "workflows": [
            workflow_json(w, [s for s in schedules if s.workflow_name == w.name]) for w in registry.workflows.values()
        ],
        "steps": [step_json(s) for s in registry.steps.values()],
    }


def registry_text(registry: Registry) -> str:
    """``kflow workflows list``: a table of the workflows, then one of the steps."""
    by_workflow: dict[str, list[str]] = {}
    for declared in registry.schedules.values():
        by_workflow.setdefault(declared.workflow_name, []).append(declared.schedule_id)
    workflows = [
        [
            w.name,
            _where(w.fn),
            duration_text(w.max_duration_ms),
            ", ".join(w.tags) or "-",
            ", ".join(by_workflow.get(w.name, ())) or "-",
        ]
        for w in registry.workflows.values()
    ]
    text = table(["WORKFLOW", "FUNCTION", "MAX DURATION", "TAGS", "SCHEDULES"], workflows)
    steps = [
        [s.name, _where(s.fn), str(s.policy.max_retries), retry_text(s), duration_text(s.timeout_ms)]
        for s in registry.steps.values()
    ]
    if steps:
        text += "\n\n" + table(["STEP", "FUNCTION", "RETRIES", "RETRY DELAY", "TIMEOUT"], steps)
    return text


def workflow_json(workflow: WorkflowDefinition, schedules: list[DeclaredSchedule]) -> dict[str, object]:
    """A workflow's definition as JSON-ready data: every option, its parameters and declared schedules."""
    data: dict[str, object] = {"name": workflow.name, "function": _where(workflow.fn)}
    data |= {name: _json_value(value) for name, value in _options(workflow)}
    data["parameters"] = _parameters(workflow.fn)
    data["doc"] = inspect.getdoc(workflow.fn)
    data["schedules"] = [_schedule_json(s) for s in schedules]
    return data


def workflow_text(workflow: WorkflowDefinition, schedules: list[DeclaredSchedule]) -> str:
    """``kflow workflows info`` of a workflow: one labelled line per option, then its schedules and docstring."""
    lines = [("workflow", workflow.name), ("function", _where(workflow.fn)), ("parameters", _signature(workflow.fn))]
    lines += [
        (name.removesuffix("_ms").replace("_", " "), _text_value(name, value)) for name, value in _options(workflow)
    ]
    for declared in schedules:
        call = json.dumps({"args": plain(declared.args.args), "kwargs": plain(declared.args.kwargs)}, default=repr)
        lines.append(
            ("schedule", f"{declared.schedule_id}: {describe_spec(declared.spec)}, overlap {declared.overlap.value}")
        )
        lines.append(("  arguments", call))
    return _labelled(lines, inspect.getdoc(workflow.fn))


def step_json(step: StepDefinition) -> dict[str, object]:
    """A step's definition as JSON-ready data: its retry policy, timeout, other options and parameters."""
    data: dict[str, object] = {"name": step.name, "function": _where(step.fn), "kind": "step"}
    data |= {name: _json_value(value) for name, value in _options(step)}
    data["parameters"] = _parameters(step.fn)
    data["doc"] = inspect.getdoc(step.fn)
    return data


def step_text(step: StepDefinition) -> str:
    """``kflow workflows info`` of a step."""
    lines = [("step", step.name), ("function", _where(step.fn)), ("parameters", _signature(step.fn))]
    lines += [("retries", f"{step.policy.max_retries} ({retry_text(step)})")]
    lines += [(name.removesuffix("_ms").replace("_", " "), _text_value(name, value)) for name, value in _options(step)]
    return _labelled([line for line in lines if line[0] != "policy"], inspect.getdoc(step.fn))


def retry_text(step: StepDefinition) -> str:
    """A step's retry delays for people: ``exponential``, ``fixed 1s``, ``list 1s, 5s``, plus the other options
    of its policy (``max_delay 5m``, …) as they are."""
    policy = step.policy
    delays = ", ".join(duration_text(ms) for ms in policy.delays_ms)
    text = f"{policy.strategy} {delays}".strip()
    extra = [
        (f.name, getattr(policy, f.name))
        for f in dataclasses.fields(policy)
        if f.name not in ("max_retries", "strategy", "delays_ms")
    ]
    shown = [
        f"{name.removesuffix('_ms')} {_text_value(name, value)}" for name, value in extra if value not in (None, False)
    ]
    return ", ".join([text, *shown])


def duration_text(ms: int | None) -> str:
    """Milliseconds for people: ``1h30m``, ``30s``, ``500ms``; ``-`` for None (no limit)."""
    if ms is None:
        return "-"
    parts, left = [], ms
    for unit, size in _UNITS:
        if left >= size:
            parts.append(f"{left // size}{unit}")
            left %= size
    return "".join(parts) or "0s"


def _options(definition: WorkflowDefinition | StepDefinition) -> list[tuple[str, object]]:
    """The definition's fields but its name and function, in declaration order (new options appear by themselves)."""
    return [
        (f.name, getattr(definition, f.name)) for f in dataclasses.fields(definition) if f.name not in ("name", "fn")
    ]


def _json_value(value: object) -> object:
    if isinstance(value, type):
        return _where(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    return plain(value)


def _text_value(name: str, value: object) -> str:
    if name.endswith("_ms") and (value is None or isinstance(value, int)):
        return duration_text(value)
    if value is None:
        return "-"
    if isinstance(value, type):
        return _where(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ", ".join(f"{f.name}={_text_value(f.name, getattr(value, f.name))}" for f in dataclasses.fields(value))
    if isinstance(value, tuple | list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return json.dumps(plain(value), default=repr) if value else "-"
    return str(value)


def _schedule_json(declared: DeclaredSchedule) -> dict[str, object]:
    return {
        "schedule_id": declared.schedule_id,
        "when": describe_spec(declared.spec),
        "spec": declared.spec.to_wire(),
        "overlap": declared.overlap.value,
        "args": {"args": plain(declared.args.args), "kwargs": plain(declared.args.kwargs)},
    }


def _parameters(fn: Callable[..., object]) -> list[dict[str, object]]:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    return [
        {
            "name": p.name,
            "kind": p.kind.name.lower(),
            "annotation": None if p.annotation is inspect.Parameter.empty else _annotation(p.annotation),
            "default": None if p.default is inspect.Parameter.empty else plain(p.default),
            "required": p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD),
        }
        for p in signature.parameters.values()
    ]


def _annotation(annotation: object) -> str:
    return annotation if isinstance(annotation, str) else getattr(annotation, "__name__", repr(annotation))


def _signature(fn: Callable[..., object]) -> str:
    try:
        return str(inspect.signature(fn))
    except (TypeError, ValueError):
        return "(…)"


def _labelled(lines: list[tuple[str, str]], doc: str | None) -> str:
    width = max(len(label) for label, _ in lines)
    text = "\n".join(f"{label.ljust(width)}  {value}" for label, value in lines)
    return text + (f"\n\n{doc}" if doc else "")


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}:{getattr(obj, '__qualname__', repr(obj))}"
