"""Code that runs inside a sandbox container (standard library only).

The image holds no code of ours: a container starts ``python3 -I -c BOOTSTRAP``, and the host
sends these modules' sources as the first frame on its stdin. The runner therefore always
matches the installed package, and rebuilding the image is needed only when the image recipe
changes, never when this code does.
"""

from __future__ import annotations

from pathlib import Path

MODULES = ("wire", "privileges", "candidate", "harness", "stdio", "calls", "pytests", "runner")

# Reads one frame (length + JSON {"modules": {name: source}, "main": name}), installs the
# modules as the package ``reasoner.sandbox.inside`` and calls ``main()`` of the runner.
BOOTSTRAP = """\
import json, os, sys, types
def read(n):
    b = b""
    while len(b) < n:
        c = os.read(0, n - len(b))
        if not c:
            sys.exit(0)
        b += c
    return b
bundle = json.loads(read(int.from_bytes(read(4), "big")))
for name in ("reasoner", "reasoner.sandbox", "reasoner.sandbox.inside"):
    pkg = types.ModuleType(name)
    pkg.__path__ = []
    sys.modules[name] = pkg
sys.modules["reasoner"].sandbox = sys.modules["reasoner.sandbox"]
sys.modules["reasoner.sandbox"].inside = sys.modules["reasoner.sandbox.inside"]
for short, source in bundle["modules"].items():
    mod = types.ModuleType("reasoner.sandbox.inside." + short)
    mod.__file__ = "/sandbox/inside/" + short + ".py"
    sys.modules[mod.__name__] = mod
    setattr(sys.modules["reasoner.sandbox.inside"], short, mod)
    exec(compile(source, mod.__file__, "exec"), mod.__dict__)
del bundle, read
sys.modules["reasoner.sandbox.inside." + "runner"].main()
"""


def bundle() -> dict:
    """The first frame a container reads: the sources of the modules above."""
    here = Path(__file__).parent
    return {"modules": {name: (here / f"{name}.py").read_text(encoding="utf-8") for name in MODULES}}
