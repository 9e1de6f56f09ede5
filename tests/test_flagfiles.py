"""Every flagfile names its command first and uses only flags that binary defines."""

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
FLAGFILES = sorted((ROOT / "flags").glob("*.flags"))


def test_there_are_flagfiles():
    assert FLAGFILES


@pytest.mark.parametrize("path", FLAGFILES, ids=lambda p: p.name)
def test_flagfile_names_its_command_and_defined_flags(path):
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# python -m "), "first line: the command that runs it"
    assert f"--flagfile=flags/{path.name}" in lines[0]
    module = lines[0].split()[3]
    names = [line[2:].split("=")[0] for line in lines if line.startswith("--")]
    code = (
        f"import {module}\nfrom absl import flags\n"
        f"print([n for n in {names!r} if n not in flags.FLAGS])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-1500:]
    assert out.stdout.strip() == "[]", f"flags not defined by {module}: {out.stdout}"


def test_every_flagfile_named_in_code_and_docs_exists():
    """No stale flagfile names: each `flags/<name>.flags` that code, docs,
    the Makefile or another flagfile mention is a file in flags/."""
    sources = [ROOT / "README.md", ROOT / "Makefile"]
    for folder in ("lvo_tf", "export", "docs", "flags"):
        sources += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".flags")]
    missing = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources
        for name in set(re.findall(r"flags/[A-Za-z0-9_]+\.flags", path.read_text()))
        if not (ROOT / name).is_file()
    )
    assert len(sources) > 10
    assert not missing, f"flagfiles named but missing: {missing}"
