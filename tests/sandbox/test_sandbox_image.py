"""The runner image: its recipe (without Docker) and what the built image holds (with it)."""

from __future__ import annotations

import os
import stat
import textwrap

import pytest

from reasoner.sandbox import Case, StdioTests, engine, image
from reasoner.sandbox.pool import Sandbox


def test_default_mirror_reads_apt_sources(tmp_path):
    (tmp_path / "sources.list.d").mkdir()
    assert image.default_mirror(str(tmp_path)) == image.DEFAULT_MIRROR
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://one.example/debian bookworm main\n")
    assert image.default_mirror(str(tmp_path)) == "http://one.example/debian"
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://two.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\nURIs: http://two.example/debian-security\nSuites: bookworm-security\n")
    assert image.default_mirror(str(tmp_path)) == "http://two.example/debian"


def test_prune_drops_caches_adds_the_user_and_clears_setuid(tmp_path):
    for folder in ("etc", "usr/bin", "usr/share/doc/x", "var/lib/apt/lists", "var/cache/apt/archives"):
        (tmp_path / folder).mkdir(parents=True)
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (tmp_path / "etc/group").write_text("root:x:0:\n")
    (tmp_path / "var/cache/apt/archives/a.deb").write_text("x")
    (tmp_path / "var/lib/apt/lists/l").write_text("x")
    su = tmp_path / "usr/bin/su"
    su.write_text("x")
    os.chmod(su, 0o4755)
    image.prune(str(tmp_path))
    assert not (tmp_path / "usr/share/doc/x").exists() and not (tmp_path / "var/cache/apt/archives/a.deb").exists()
    assert stat.S_IMODE(su.stat().st_mode) == 0o755
    assert "sandbox:x:10001:10001" in (tmp_path / "etc/passwd").read_text()


@pytest.mark.docker
def test_built_image_fits_its_budget_and_has_no_setuid_files(single):
    api = engine.connect()
    try:
        info = image.describe(api)
    finally:
        api.close()
    assert info["current"] and info["size_mb"] <= image.BUDGET_MB
    runner = single.runner_info()
    assert runner["uid"] == 10001 and runner["pid"] == 1 and runner["python"].startswith("3.")
    walk = textwrap.dedent("""
        import os, stat
        n = 0
        for folder, _, names in os.walk('/'):
            if folder.startswith(('/proc', '/sys')):
                continue
            for name in names:
                try:
                    n += bool(os.lstat(os.path.join(folder, name)).st_mode & (stat.S_ISUID | stat.S_ISGID))
                except OSError:
                    pass
        print(n)
        """)
    run = single.run(walk, StdioTests((Case("", "0"),)))
    assert run.status == "passed", run


@pytest.mark.docker
def test_dockerfile_route(single):
    tag = "reasoner-sandbox:test-dockerfile"
    built = image.build(tag, method="dockerfile", base=engine.IMAGE, cpp=False, log=lambda line: None)
    assert built == {"tag": tag, "method": "dockerfile", "size_mb": built["size_mb"]}
    api = engine.connect()
    try:
        assert image.describe(api, tag)["current"]
        with Sandbox(workers=1, image=tag) as sandbox:
            assert sandbox.run("print(6 * 7)\n", StdioTests((Case("", "42"),))).status == "passed"
    finally:
        api.remove_image(tag, force=True)
        base = api.inspect_image(engine.IMAGE)["Id"]
        for leftover in api.images(all=True, filters={"dangling": True}):  # the build's cached steps
            if api.inspect_image(leftover["Id"])["Parent"] == base:
                api.remove_image(leftover["Id"], force=True)
        api.close()
