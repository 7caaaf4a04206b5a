"""Where a benchmark's rows come from: a local file, a data directory, or Hugging Face datasets.

A benchmark loader (``gsm8k``, ``math500``, ...) takes an optional ARG:

* no ARG: look for the benchmark's file (e.g. ``gsm8k_test.jsonl``) in the data directories,
  ``$REASONER_DATA`` (several joined with ``:``) then ``./data``; if it is in none of them and
  the ``datasets`` package is installed, download the benchmark's Hugging Face dataset.
* a path: a JSONL file (``.jsonl`` or ``.jsonl.gz``), or a directory holding the benchmark's file.
* ``hf`` or ``hf:OWNER/NAME``: Hugging Face datasets explicitly (the default dataset, or another
  one with the same fields), never a local file.

Every row comes with its position (the line number of a file, the 1-based index of a dataset
row), so errors name the line to fix and ids are the same whichever way the data came.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from reasoner.tasks import TaskError
from reasoner.tasks.jsonl import read_rows

ENV = "REASONER_DATA"


@dataclass(frozen=True)
class Source:
    """Where one split of a benchmark lives, locally and on the Hugging Face Hub."""

    filename: str  # e.g. gsm8k_test.jsonl, looked up in the data directories
    hf_id: str  # e.g. openai/gsm8k
    hf_split: str  # e.g. test
    hf_config: str | None = None  # e.g. main


def data_dirs() -> list[Path]:
    """The directories searched for benchmark files: ``$REASONER_DATA`` entries, then ``./data``."""
    dirs = [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]
    return dirs + [Path("data")]


def read_hf(dataset_id: str, split: str, config: str | None = None) -> Iterator[tuple[int, Any]]:
    """Rows of a Hugging Face dataset as ``(1-based index, row)``; needs ``datasets`` and the Hub."""
    try:
        import datasets
    except ImportError:
        raise TaskError(f"loading {dataset_id} from Hugging Face needs the datasets package (pip install datasets); "
                        "or pass a local JSONL file as NAME:PATH") from None
    try:
        rows = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, bad split: one line for the user
        first = str(exc).strip().splitlines()
        raise TaskError(f"could not load {dataset_id} ({split}) from Hugging Face: {type(exc).__name__}: "
                        f"{first[0] if first else ''}; pass a local JSONL file as NAME:PATH instead") from None
    for i, row in enumerate(rows, 1):
        yield i, dict(row)


def rows(name: str, arg: str | None, source: Source, strict: bool = False) -> tuple[Iterator[tuple[int, Any]], str]:
    """The rows of benchmark ``name`` for a loader ARG (see the module docstring) and where they came from."""
    if arg == "hf" or (arg or "").startswith("hf:"):
        dataset_id = arg[3:] if arg.startswith("hf:") else source.hf_id
        config = source.hf_config if dataset_id == source.hf_id else None
        return read_hf(dataset_id, source.hf_split, config), f"hf:{dataset_id}"
    if arg:
        path = Path(arg).expanduser()
        if path.is_dir():
            path = path / source.filename
        if not path.is_file():
            raise TaskError(f"{name}: data file not found: {path}")
        return read_rows(path, strict), str(path)
    tried = []
    for directory in data_dirs():
        path = directory / source.filename
        if path.is_file():
            return read_rows(path, strict), str(path)
        tried.append(str(directory))
    try:
        import datasets  # noqa: F401
    except ImportError:
        env = os.environ.get(ENV)
        raise TaskError(
            f"{name}: {source.filename} not found in the data directories ({', '.join(tried)}; "
            f"${ENV} is {'set to ' + env if env else 'unset'}); pass {name}:PATH, set --data-dir DIR "
            f"or ${ENV}, or install the datasets package to download {source.hf_id}") from None
    return read_hf(source.hf_id, source.hf_split, source.hf_config), f"hf:{source.hf_id}"


def field(row: dict, *keys: str) -> Any:
    """The first of ``keys`` present in ``row`` with a non-empty value, else a TaskError naming them."""
    for key in keys:
        value = row.get(key)
        if value not in (None, ""):
            return value
    raise TaskError(f"no {' or '.join(repr(k) for k in keys)} field")
