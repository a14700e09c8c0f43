"""Loading the user's workflow module (``-A pkg.module``) for the commands that need workflow code."""

from __future__ import annotations

import os
import sys

from engine import KflowError, Registry


class AppLoadError(KflowError):
    """The ``-A`` module could not be imported or defines no workflows; one line for the user."""

    retryable = False


def load_registry(module: str) -> Registry:
    """Import ``module`` (the current directory is importable, as with ``python -m``) and collect its
    workflows and steps.

    Raises:
        AppLoadError: the module is missing, fails to import, or defines nothing kflow can run.
    """
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        registry = Registry.from_module(module)
    except ModuleNotFoundError as exc:
        raise AppLoadError(f"cannot import -A {module}: {exc}") from None
    except KflowError as exc:
        raise AppLoadError(f"-A {module}: {exc}") from None
    except Exception as exc:  # the user's module raised while importing
        raise AppLoadError(f"importing -A {module} raised {type(exc).__name__}: {exc}") from None
    if not registry.workflows:
        raise AppLoadError(f"-A {module} defines no @workflow functions")
    return registry
