"""The one plugin loader: entry points of a group (``reasoner.verifiers``, ``reasoner.tasks``).

A plugin is an entry point of an installed distribution. This distribution's own built-ins
(``math``, ``format``, ``gsm8k`` ...) are entry points too and load through the same path.

``REASONER_LOAD_PLUGINS`` limits which third-party plugins load (the built-ins always do):

* unset: every installed plugin;
* empty (``REASONER_LOAD_PLUGINS=``): none;
* a comma-separated list of distribution names (``my-plugins``) or entry-point names
  (``likes7``): only those, e.g. ``REASONER_LOAD_PLUGINS=my-plugins,likes7``.

Distribution names compare as pip does (case, ``-``, ``_`` and ``.`` alike). No torch, no
training: the verifiers and tasks packages use this from a reward-worker process too.
"""

from __future__ import annotations

import logging
import os
import re
from importlib.metadata import EntryPoint, entry_points

ENV = "REASONER_LOAD_PLUGINS"
OWN_DISTRIBUTION = "reasoner-rl"
log = logging.getLogger(__name__)


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distribution(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return _canonical(dist.metadata["Name"]) if dist is not None and dist.metadata["Name"] else ""


def allowed() -> set[str] | None:
    """The names ``REASONER_LOAD_PLUGINS`` lets load (canonical), or None when it is unset (all)."""
    value = os.environ.get(ENV)
    if value is None:
        return None
    return {_canonical(part.strip()) for part in value.split(",") if part.strip()}


def _scan(group: str) -> tuple[dict[str, EntryPoint], list[str]]:
    names = allowed()
    found: dict[str, EntryPoint] = {}
    held_back: list[str] = []
    own = []
    others = []
    for ep in entry_points(group=group):
        (own if _distribution(ep) == OWN_DISTRIBUTION else others).append(ep)
    for ep in own:
        found.setdefault(ep.name, ep)
    for ep in others:
        if names is not None and _distribution(ep) not in names and _canonical(ep.name) not in names:
            held_back.append(ep.name)
            continue
        if ep.name in found:
            log.warning("plugin %s of %s has the name of one already loaded in %s; ignored", ep.name,
                        _distribution(ep) or "an unknown distribution", group)
            continue
        found[ep.name] = ep
    return found, sorted(held_back)


def find(group: str) -> dict[str, EntryPoint]:
    """Entry points of ``group`` that may load, by name: the built-ins and the plugins ``REASONER_LOAD_PLUGINS``
    allows. A plugin named like a built-in is ignored with a warning."""
    return _scan(group)[0]


def held_back(group: str) -> list[str]:
    """Installed entry points of ``group`` that ``REASONER_LOAD_PLUGINS`` leaves out."""
    return _scan(group)[1]


def unknown_hint(group: str, name: str) -> str:
    """A sentence to add to an "unknown NAME" error when the plugin is installed but held back."""
    if name in held_back(group):
        return f"; {name!r} is installed but {ENV}={os.environ.get(ENV)!r} leaves it out"
    return ""
