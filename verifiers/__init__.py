"""Verifiers: judge one completion against one example and return a `Verdict`.

The contract (docs/verifiers.md has the long form):

* ``Verifier.verify(completion, example) -> Verdict`` never raises on model output:
  unparsable text, a timeout or a crash of the checker are verdicts with a reason.
* ``Verifier.verify_batch(completions, examples)`` judges many at once; the default runs
  ``verify`` in a loop, verifiers with expensive checks override it to use a pool.
* Rewards are binary by default (1.0 right, 0.0 wrong). A verifier judges; it does not shape:
  weights and penalties are settings of the trainer.
* A verifier may return ``None`` from ``verify`` when it does not apply to an example; the
  trainer then leaves it out of that completion's reward and of the verifier's mean.

Verifiers are plugins, found through the entry-point group ``reasoner.verifiers``. The
built-ins (``math``, ``format``) are registered in this distribution's own pyproject and load
through the same path as third-party ones (``reasoner.plugins``; ``REASONER_LOAD_PLUGINS``
limits which third-party ones load). A plugin package needs two lines::

    [project.entry-points."reasoner.verifiers"]
    mine = "my_package.module:MyVerifier"

This package imports no torch and knows nothing about training, so it can run in a separate
reward-worker process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

from reasoner import plugins

ENTRY_POINT_GROUP = "reasoner.verifiers"
log = logging.getLogger(__name__)


class ExampleLike(Protocol):
    """What a verifier may read from an example (``tasks.Example`` satisfies it)."""

    id: str
    reference: Any
    meta: Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    """A judgement. ``reason`` is a short code (``correct``, ``wrong``, ``no_answer`` ...)."""

    reward: float
    ok: bool
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"reward": self.reward, "ok": self.ok, "reason": self.reason, "details": self.details}


class Verifier:
    """Base class of verifiers. Subclasses set ``name`` and implement ``verify``."""

    name: str = "verifier"

    def verify(self, completion: str, example: ExampleLike) -> Verdict | None:
        raise NotImplementedError

    def verify_batch(self, completions: Sequence[str], examples: Sequence[ExampleLike]) -> list[Verdict | None]:
        return [safe_verify(self, c, e) for c, e in zip(completions, examples, strict=True)]

    def close(self) -> None:
        """Release pools, containers or processes the verifier holds."""


class VerifierError(ValueError):
    """A verifier name or option the user gave cannot be used; the message says why."""


def safe_verify(verifier: Verifier, completion: str, example: ExampleLike) -> Verdict | None:
    """``verifier.verify`` with any exception of the verifier turned into a zero-reward verdict."""
    try:
        verdict = verifier.verify(completion, example)
    except Exception as exc:  # noqa: BLE001 - the contract: a checker crash is a verdict
        log.debug("verifier %s raised on example %s", verifier.name, example.id, exc_info=True)
        return Verdict(0.0, False, "verifier_error", {"error": f"{type(exc).__name__}: {exc}"})
    if verdict is not None and not isinstance(verdict, Verdict):
        return Verdict(0.0, False, "verifier_error", {"error": f"returned {type(verdict).__name__}, not Verdict"})
    return verdict


def safe_verify_batch(verifier: Verifier, completions: Sequence[str], examples: Sequence[ExampleLike]) -> list[Verdict | None]:
    """``verify_batch`` guarded the same way: a crash of the whole batch falls back to one by one."""
    try:
        verdicts = list(verifier.verify_batch(completions, examples))
        if len(verdicts) != len(completions):
            raise RuntimeError(f"verify_batch returned {len(verdicts)} verdicts for {len(completions)} completions")
    except Exception:  # noqa: BLE001
        log.debug("verify_batch of %s raised; judging one by one", verifier.name, exc_info=True)
        return [safe_verify(verifier, c, e) for c, e in zip(completions, examples)]
    return [v if (v is None or isinstance(v, Verdict)) else
            Verdict(0.0, False, "verifier_error", {"error": f"returned {type(v).__name__}, not Verdict"})
            for v in verdicts]


def available() -> dict[str, str]:
    """Installed verifier names mapped to the first line of their docstring."""
    out = {}
    for name, ep in sorted(plugins.find(ENTRY_POINT_GROUP).items()):
        try:
            doc = (ep.load().__doc__ or "").strip().splitlines()
        except Exception as exc:  # a broken plugin must not hide the others
            doc = [f"(failed to load: {type(exc).__name__}: {exc})"]
        out[name] = doc[0] if doc else ""
    return out


def _check_options(name: str, cls: Any, options: Mapping[str, Any]) -> None:
    """Options the verifier does not take are a one-line error that lists those it does."""
    import inspect

    try:
        params = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [p for p, v in params.items() if v.kind in (v.POSITIONAL_OR_KEYWORD, v.KEYWORD_ONLY)]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise VerifierError(f"verifier {name!r} has no option {', '.join(unknown)} "
                            f"(its options: {', '.join(accepted) or 'none'})")


def get(name: str, **options: Any) -> Verifier:
    """Instantiate the verifier registered under ``name`` with keyword ``options``."""
    eps = plugins.find(ENTRY_POINT_GROUP)
    if name not in eps:
        known = ", ".join(sorted(eps)) or "none installed"
        raise VerifierError(f"unknown verifier {name!r} (known: {known}){plugins.unknown_hint(ENTRY_POINT_GROUP, name)}; "
                            f"a plugin registers in the entry-point group {ENTRY_POINT_GROUP!r}")
    try:
        cls = eps[name].load()
    except Exception as exc:
        raise VerifierError(f"verifier {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    _check_options(name, cls, options)
    try:
        verifier = cls(**options)
    except Exception as exc:
        raise VerifierError(f"verifier {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(verifier, Verifier) and not hasattr(verifier, "verify"):
        raise VerifierError(f"verifier {name!r} has no verify method")
    return verifier


__all__ = ["Verdict", "Verifier", "VerifierError", "ExampleLike", "available", "get", "safe_verify",
           "safe_verify_batch", "ENTRY_POINT_GROUP"]
