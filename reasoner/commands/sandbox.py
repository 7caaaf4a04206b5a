"""``reasoner sandbox``: build the runner image, check the setup, run a program under tests."""

from __future__ import annotations

import json
from pathlib import Path

import click

from reasoner.sandbox import CallTests, Case, FunctionTests, Job, Limits, PytestTests, SandboxUnavailable, StdioTests


@click.group()
def sandbox() -> None:
    """The Docker sandbox that runs model-written code for the `code` verifier.

    \b
    First time on a machine:
      reasoner sandbox build              # the runner image (offline via debootstrap when root)
      reasoner sandbox check              # daemon, image and a test job; says how to fix what is not
    Then:
      reasoner sandbox run solution.py --tests tests.py --entry-point add
    """


@sandbox.command()
@click.option("--method", type=click.Choice(["auto", "debootstrap", "dockerfile"]), default="auto", show_default=True,
              help="debootstrap: offline from a Debian root file system (needs root); dockerfile: FROM --base "
                   "(needs a registry); auto: debootstrap when it can run here.")
@click.option("--mirror", default=None, help="Debian mirror for debootstrap [default: the one apt uses here].")
@click.option("--base", default=None, help="Base image for the dockerfile method [default: python:3.11-slim-bookworm].")
@click.option("--cpp/--no-cpp", default=True, show_default=True, help="Include g++ for C++ programs.")
@click.option("--tag", default=None, help="Image tag [default: the tag the sandbox uses].")
def build(method: str, mirror: str | None, base: str | None, cpp: bool, tag: str | None) -> None:
    """Build the sandbox runner image.

    \b
    Examples:
      sudo reasoner sandbox build                       # offline, from the Debian mirror apt uses
      reasoner sandbox build --method dockerfile        # FROM python:3.11-slim-bookworm
    """
    from reasoner.sandbox import engine, image

    try:
        info = image.build(tag or engine.IMAGE, method=method, mirror=mirror, cpp=cpp, base=base,
                           log=lambda line: click.echo(line, err=True))
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"built {info['tag']} ({info['method']}, {info['size_mb']} MB)")


HOSTS_HELP = ("Docker endpoints, comma-separated: unix:///path/docker.sock or tcp://HOST:PORT, each optionally "
              "with ?workers=N [default: $REASONER_SANDBOX_HOSTS, else the local daemon].")


def _hosts(spec: str | None) -> list:
    from reasoner.sandbox import hosts as hostlist
    try:
        return hostlist.parse(spec, workers=1)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--hosts") from None


@sandbox.command()
@click.option("--tag", default=None, help="Image tag to check [default: the tag the sandbox uses].")
@click.option("--hosts", default=None, metavar="URL,...", help=HOSTS_HELP)
def check(tag: str | None, hosts: str | None) -> None:
    """Say whether each Docker host and its image are ready, and how to fix them if not.

    \b
    Examples:
      reasoner sandbox check && echo ready
      reasoner sandbox check --hosts unix:///var/run/docker.sock,tcp://10.0.0.7:2376
    """
    from reasoner.sandbox import engine

    tag = tag or engine.IMAGE
    endpoints = _hosts(hosts)
    ready = [_check_host(host, tag, f" {host.name}" if len(endpoints) > 1 else "") for host in endpoints]
    if not all(ready):
        raise SystemExit(1)


def _check_host(host, tag: str, where: str) -> bool:
    """Daemon, image and a test job on one host, a line each; False at the first that fails."""
    from reasoner.sandbox import engine, image
    from reasoner.sandbox.pool import Sandbox

    try:
        api = engine.connect(host.url)
    except SandboxUnavailable as exc:
        return _fail(f"docker daemon{where}", str(exc))
    click.echo(f"ok    docker daemon{where}: server {api.version().get('Version', '?')}")
    try:
        info = image.describe(api, tag)
    except SandboxUnavailable as exc:
        return _fail(f"image{where}", str(exc))
    finally:
        api.close()
    if not info["current"]:
        return _fail(f"image{where}", f"{tag} was built from recipe {info['recipe']}, this version needs "
                                      f"{image.RECIPE}: rebuild it with `reasoner sandbox build`")
    click.echo(f"ok    image{where}: {tag}, {info['size_mb']} MB")
    try:  # the host's own URL; None (Docker's environment) only when no hosts are configured at all
        with Sandbox(workers=1, image=tag, hosts=[host.url] if host.url else None) as pool:
            info = pool.runner_info()
            good = pool.run("def f(x):\n    return x + 1\n", FunctionTests("assert f(1) == 2"))
            bad = pool.run("def f(x):\n    return x\n", FunctionTests("assert f(1) == 2"))
    except SandboxUnavailable as exc:
        return _fail(f"runner{where}", str(exc))
    if not (good.passed and bad.status == "failed"):
        return _fail(f"test job{where}", f"expected passed/failed, got {good.status}/{bad.status}: "
                                         f"{good.details or bad.details}")
    cpp = "with g++" if info.get("cpp") else "no g++ (C++ programs fail to compile)"
    click.echo(f"ok    runner{where}: Python {info.get('python')}, uid {info.get('uid')}, {cpp}; test job in "
               f"{good.seconds * 1000:.0f} ms")
    return True


def _fail(what: str, message: str) -> bool:
    click.echo(f"FAIL  {what}: {message}")
    return False


@sandbox.command()
@click.argument("program", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--tests", "tests_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Python test code: asserts that call the program's functions, or a check(candidate).")
@click.option("--entry-point", default=None, help="With --tests: the function check(candidate) is called with.")
@click.option("--cases", "cases_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSONL of stdin/stdout cases: {"input": "1 2\\n", "output": "3\\n"} per line.')
@click.option("--calls", "calls_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help='JSON call tests: {"fn_name": "add", "inputs": [[1, 2]], "outputs": [3]} (optional '
                   '"class_name": "Solution", "unwrap_outputs": true).')
@click.option("--pytest", "pytest_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="pytest-style tests: from solution import f, def test_*() functions.")
@click.option("--all-tests", is_flag=True, help="Run every test after a failure, so tests_passed counts them all.")
@click.option("--language", type=click.Choice(["auto", "python", "cpp"]), default="auto", show_default=True,
              help="auto: cpp for .cpp/.cc/.cxx files, else python.")
@click.option("--timeout", type=float, default=Limits.timeout, show_default=True, help="Wall-clock seconds.")
@click.option("--memory", "memory_mb", type=int, default=Limits.memory_mb, show_default=True, help="MiB.")
def run(program: Path, tests_file: Path | None, entry_point: str | None, cases_file: Path | None,
        calls_file: Path | None, pytest_file: Path | None, all_tests: bool, language: str,
        timeout: float, memory_mb: int) -> None:
    """Run PROGRAM in the sandbox and print the Execution as JSON (exit 0 whatever the verdict).

    Without --tests, --cases, --calls or --pytest the program runs once with empty stdin and
    passes if it exits 0.

    \b
    Examples:
      reasoner sandbox run solution.py --tests test_add.py
      reasoner sandbox run solution.py --tests humaneval_test.py --entry-point add
      reasoner sandbox run solution.cpp --cases cases.jsonl --timeout 2
      reasoner sandbox run solution.py --calls calls.json --all-tests
      reasoner sandbox run solution.py --pytest test_solution.py
    """
    from reasoner.sandbox.pool import Sandbox

    if sum(f is not None for f in (tests_file, cases_file, calls_file, pytest_file)) > 1:
        raise click.UsageError("give one of --tests, --cases, --calls, --pytest, not both")
    if language == "auto":
        language = "cpp" if program.suffix in (".cpp", ".cc", ".cxx") else "python"
    try:
        if tests_file:
            tests = FunctionTests(tests_file.read_text(encoding="utf-8"), entry_point)
        elif cases_file:
            tests = StdioTests(_read_cases(cases_file))
        elif calls_file:
            tests = _read_calls(calls_file)
        elif pytest_file:
            tests = PytestTests(pytest_file.read_text(encoding="utf-8"))
        else:
            tests = StdioTests((Case(),))
        limits = Limits(timeout=timeout, memory_mb=memory_mb)
        job = Job(program.read_text(encoding="utf-8"), tests, limits, language, all_tests=all_tests)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        with Sandbox(workers=1, limits=limits) as pool:
            execution = pool.submit(job).result()
    except SandboxUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(execution.to_dict(), indent=2, ensure_ascii=False))


def _read_calls(path: Path) -> CallTests:
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(spec, dict):
            raise ValueError("not a JSON object")
        return CallTests(spec.get("fn_name"), spec.get("inputs") or (), spec.get("outputs") or (),
                         spec.get("class_name"), bool(spec.get("unwrap_outputs", False)))
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"{path}: {exc}", param_hint="--calls") from None


def _read_cases(path: Path) -> tuple[Case, ...]:
    cases = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            cases.append(Case(str(row.get("input", "")), None if row.get("output") is None else str(row["output"])))
        except (ValueError, AttributeError) as exc:
            raise click.BadParameter(f"line {n} is not a JSON object with input/output: {exc}",
                                     param_hint="--cases") from None
    if not cases:
        raise click.BadParameter(f"{path} has no cases", param_hint="--cases")
    return tuple(cases)


@sandbox.command()
@click.option("--all", "everything", is_flag=True, help="Remove every sandbox container, running ones too.")
@click.option("--hosts", default=None, metavar="URL,...", help=HOSTS_HELP)
def clean(everything: bool, hosts: str | None) -> None:
    """Remove sandbox containers left behind by processes that ended without closing their pool.

    \b
    Examples:
      reasoner sandbox clean
      reasoner sandbox clean --all --hosts tcp://10.0.0.7:2376
    """
    from reasoner.sandbox import engine

    endpoints = _hosts(hosts)
    unreachable = []
    for host in endpoints:
        try:
            api = engine.connect(host.url)
        except SandboxUnavailable as exc:
            unreachable.append(str(exc))
            continue
        try:
            removed = engine.remove_stale(api, everything=everything)
        finally:
            api.close()
        where = f"{host.name}: " if len(endpoints) > 1 else ""
        click.echo(f"{where}removed {len(removed)} container(s)" + (f": {' '.join(removed)}" if removed else ""))
    if unreachable:
        raise click.ClickException("; ".join(unreachable))
