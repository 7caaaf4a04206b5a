"""Building the runner image.

Two routes to the same image (Debian bookworm, Python 3, g++ unless ``cpp=False``, a user
10001, no setuid bits, no package caches):

* ``debootstrap``: offline from a Debian root file system: ``debootstrap --variant=minbase``
  from a Debian mirror, pruned, then ``docker import``. Needs root and the ``debootstrap``
  package, but no Docker registry (the project's CI machines have none).
* ``dockerfile``: ``FROM python:3.11-slim-bookworm`` (or ``base``) on a machine that can pull it.

The image holds no code of ours (see ``sandbox/inside``), so it is rebuilt only when this
recipe changes; `RECIPE` is then bumped along with the tag in ``engine.IMAGE``.
"""

from __future__ import annotations

import glob
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from typing import Callable

from reasoner.sandbox import SandboxUnavailable, engine

RECIPE = "1"
SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DEFAULT_BASE = "python:3.11-slim-bookworm"
BUDGET_MB = 400
"""Largest image we accept; with g++ it is ~355 MB, without ~130 MB."""
PRUNE = ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/doc/*", "usr/share/man/*",
         "usr/share/info/*", "usr/share/locale/*", "var/log/*", "tmp/*")
USER_LINE = "sandbox:x:10001:10001:sandbox:/tmp:/usr/sbin/nologin\n"
GROUP_LINE = "sandbox:x:10001:\n"
CHANGES = [f"LABEL reasoner.sandbox.recipe={RECIPE}", "USER 10001:10001", "WORKDIR /tmp", "ENV LANG=C.UTF-8"]

DOCKERFILE = f"""\
ARG BASE={DEFAULT_BASE}
FROM $BASE
USER root
ARG CPP=1
RUN set -e; \\
    if [ "$CPP" = 1 ]; then \\
      apt-get update; apt-get install -y --no-install-recommends g++; rm -rf /var/lib/apt/lists/*; \\
    fi; \\
    grep -q '^sandbox:' /etc/passwd || echo '{USER_LINE.strip()}' >> /etc/passwd; \\
    grep -q '^sandbox:' /etc/group || echo '{GROUP_LINE.strip()}' >> /etc/group; \\
    find / -xdev -type f -perm /6000 -exec chmod a-s {{}} +
LABEL reasoner.sandbox.recipe={RECIPE}
USER 10001:10001
WORKDIR /tmp
"""

Log = Callable[[str], None]


def default_mirror(apt: str = "/etc/apt") -> str:
    """The Debian mirror this machine's apt uses (deb822 or one-line sources), else deb.debian.org."""
    for path in sorted(glob.glob(f"{apt}/sources.list.d/*.sources")):
        with open(path, encoding="utf-8", errors="replace") as f:
            for stanza in f.read().split("\n\n"):
                uris = re.search(r"^URIs:\s*(\S+)", stanza, re.M)
                suites = re.search(r"^Suites:\s*(.+)$", stanza, re.M)
                if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                    return uris.group(1)
    for path in [f"{apt}/sources.list", *sorted(glob.glob(f"{apt}/sources.list.d/*.list"))]:
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                for line in f:
                    m = re.match(r"\s*deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
                    if m and m.group(2) == SUITE:
                        return m.group(1)
        except OSError:
            continue
    return DEFAULT_MIRROR


def choose_method() -> str:
    """``debootstrap`` when it can run here (root and the tool installed), else ``dockerfile``."""
    return "debootstrap" if shutil.which("debootstrap") and os.geteuid() == 0 else "dockerfile"


def build(tag: str = engine.IMAGE, method: str = "auto", mirror: str | None = None, cpp: bool = True,
          base: str | None = None, log: Log = print) -> dict:
    """Build the runner image; returns ``{"tag", "method", "size_mb"}``."""
    api = engine.connect(timeout=600)
    try:
        method = choose_method() if method == "auto" else method
        if method == "debootstrap":
            _debootstrap(api, tag, mirror or default_mirror(), cpp, log)
        elif method == "dockerfile":
            _dockerfile(api, tag, base or DEFAULT_BASE, cpp, log)
        else:
            raise ValueError(f"unknown build method {method!r} (auto, debootstrap, dockerfile)")
        size_mb = round(api.inspect_image(tag)["Size"] / 1e6)
    finally:
        api.close()
    if size_mb > BUDGET_MB:
        log(f"warning: the image is {size_mb} MB, over the {BUDGET_MB} MB budget")
    return {"tag": tag, "method": method, "size_mb": size_mb}


def _debootstrap(api, tag: str, mirror: str, cpp: bool, log: Log) -> None:
    if os.geteuid() != 0:
        raise SandboxUnavailable("debootstrap needs root: run `sudo reasoner sandbox build`, or use "
                                 "`reasoner sandbox build --method dockerfile` on a machine that can pull images")
    if not shutil.which("debootstrap"):
        raise SandboxUnavailable("debootstrap is missing: `sudo apt-get install debootstrap`, or use "
                                 "`reasoner sandbox build --method dockerfile`")
    packages = ["python3"] + (["g++"] if cpp else [])
    rootfs = tempfile.mkdtemp(prefix="reasoner-rootfs-")
    try:
        log(f"debootstrap {SUITE} from {mirror} with {', '.join(packages)} ...")
        done = subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE,
                               rootfs, mirror], capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise SandboxUnavailable(f"debootstrap failed (is {mirror} reachable?): " + " | ".join(tail))
        prune(rootfs)
        log(f"importing the root file system as {tag} ...")
        tar = subprocess.Popen(["tar", "--numeric-owner", "-C", rootfs, "-c", "."], stdout=subprocess.PIPE)
        try:
            repository, _, version = tag.rpartition(":")
            api.import_image(src=tar.stdout, repository=repository, tag=version, changes=CHANGES, stream_src=True)
        finally:
            tar.stdout.close()
            if tar.wait() != 0:
                raise SandboxUnavailable("tar of the root file system failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)


def prune(rootfs: str) -> None:
    """Drop caches and docs, add the sandbox user, clear every setuid and setgid bit."""
    for pattern in PRUNE:
        for path in glob.glob(os.path.join(rootfs, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    with open(os.path.join(rootfs, "etc/passwd"), "a", encoding="utf-8") as f:
        f.write(USER_LINE)
    with open(os.path.join(rootfs, "etc/group"), "a", encoding="utf-8") as f:
        f.write(GROUP_LINE)
    for folder, _dirs, files in os.walk(rootfs):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            mode = os.lstat(path).st_mode
            if mode & 0o6000:
                os.chmod(path, mode & 0o1777)


def _dockerfile(api, tag: str, base: str, cpp: bool, log: Log) -> None:
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        data = DOCKERFILE.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    log(f"docker build from {base}{' with g++' if cpp else ''} ...")
    error = None
    for chunk in api.build(fileobj=context, custom_context=True, tag=tag, rm=True, forcerm=True, decode=True,
                           buildargs={"BASE": base, "CPP": "1" if cpp else "0"}):
        if "error" in chunk:
            error = chunk["error"].strip()
        elif chunk.get("stream", "").strip():
            log(chunk["stream"].rstrip())
    if error:
        raise SandboxUnavailable(f"docker build failed: {error}")


def describe(api, tag: str = engine.IMAGE) -> dict:
    """What `reasoner sandbox check` reports about an image (SandboxUnavailable if absent)."""
    info = engine.require_image(api, tag)
    labels = (info.get("Config") or {}).get("Labels") or {}
    return {"tag": tag, "size_mb": round(info["Size"] / 1e6), "recipe": labels.get("reasoner.sandbox.recipe"),
            "current": labels.get("reasoner.sandbox.recipe") == RECIPE}
