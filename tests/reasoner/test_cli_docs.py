"""docs/cli.md is generated from --help and must be current."""

from pathlib import Path

from reasoner.cli_docs import render


def test_cli_reference_in_docs_is_current():
    docs = Path(__file__).resolve().parents[2] / "docs" / "cli.md"
    assert docs.read_text() == render(), "docs/cli.md is stale: python -m reasoner.cli_docs > docs/cli.md"
