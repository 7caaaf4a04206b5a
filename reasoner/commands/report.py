"""`reasoner report`: PNG plots and a Markdown summary of one or more runs."""

from __future__ import annotations

from pathlib import Path

import click

EPILOG = """\b
Examples:
  reasoner report runs/grpo-arithmetic-20261202-101500          # -> RUN/report/
  reasoner report runs/a runs/b -o reports/a-vs-b                # two runs in every panel
\b
Writes reward.png, accuracy.png, kl.png, length.png, time.png, report.png (all panels) and
report.md (a table comparing the runs). Works on a run still in progress."""


@click.command(epilog=EPILOG)
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the report [default: RUN/report for one run, ./report for several].")
def report(runs, output):
    """Plot reward, accuracy, KL, completion length and time per step of RUNS, and compare them."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        raise click.ClickException("reasoner report draws with matplotlib: pip install 'reasoner-rl[report]'")
    from reasoner.report import ReportInputError, write_report

    out = output or (runs[0] / "report" if len(runs) == 1 else Path("report"))
    try:
        written = write_report(list(runs), out)
    except ReportInputError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"report: {out / 'report.md'} ({len(written) - 1} images)")
