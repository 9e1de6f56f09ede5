"""BUILD must stay true to the tree (Bazel cannot run offline here, so we parse it).

BUILD is Starlark; the subset used here is Python syntax, so it is executed
with recording stand-ins for the rules.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGES = ("lvo_tf", "export", "tests")
RULES = ("py_library", "py_binary", "py_test")


def _targets():
    targets = []

    def rule(kind):
        def record(**kwargs):
            targets.append({"kind": kind, **kwargs})

        return record

    scope = {kind: rule(kind) for kind in RULES}
    scope["load"] = lambda *args: None
    scope["package"] = lambda **kwargs: None
    scope["glob"] = lambda patterns: sorted(
        p.relative_to(ROOT).as_posix() for pattern in patterns for p in ROOT.glob(pattern)
    )
    exec(compile((ROOT / "BUILD").read_text(), "BUILD", "exec"), scope)
    return targets


def _python_files():
    return {
        p.relative_to(ROOT).as_posix()
        for package in PACKAGES
        for p in (ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    }


def _is_program(path: pathlib.Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(
        isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for node in tree.body
    )


def test_every_python_file_is_in_exactly_one_target():
    seen = {}
    for target in _targets():
        for src in target["srcs"]:
            assert src not in seen, f"{src} is in both {seen[src]} and {target['name']}"
            seen[src] = target["name"]
    missing = sorted(_python_files() - set(seen))
    assert not missing, f"files not covered by any BUILD target: {missing}"


def test_listed_files_and_labels_exist():
    targets = _targets()
    names = [t["name"] for t in targets]
    assert len(names) == len(set(names)), "duplicate target names"
    for target in targets:
        for src in target["srcs"] + ([target["main"]] if "main" in target else []):
            assert (ROOT / src).is_file(), f"{target['name']} lists missing file {src}"
        for dep in target.get("deps", []):
            assert dep.startswith(":") and dep[1:] in names, f"{target['name']}: bad dep {dep}"


def test_tests_and_binaries_have_the_right_rule():
    targets = _targets()
    test_srcs = {s for t in targets if t["kind"] == "py_test" for s in t["srcs"]}
    test_files = {p for p in _python_files() if p.startswith("tests/test_")}
    assert test_srcs == test_files, "every tests/test_*.py is one py_test and nothing else is"
    mains = {t["main"] for t in targets if t["kind"] == "py_binary"}
    programs = {p for p in _python_files() if not p.startswith("tests/") and _is_program(ROOT / p)}
    assert mains == programs, "each module with a __main__ block is a py_binary's main"


def test_the_library_never_imports_export():
    """`export` builds on `lvo_tf`, never the reverse (its benchmark lives in export/)."""
    offenders = []
    for path in sorted((ROOT / "lvo_tf").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            if any(n == "export" or n.startswith("export.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, f"lvo_tf imports export at {offenders}"


def test_imports_inside_functions_say_why():
    """Imports live at module top; one inside a function (an optional or heavy
    dependency, or a module that must not load TensorFlow) says why in a
    `# lazily:` comment on the lines just above its group."""
    unexplained = []
    for package in ("lvo_tf", "export"):
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text().split("\n")
            for node in ast.walk(ast.parse("\n".join(lines))):
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                for sub in ast.walk(node):
                    if not isinstance(sub, (ast.Import, ast.ImportFrom)):
                        continue
                    i = sub.lineno - 2  # walk up over the import group to its comment
                    while i >= 0 and lines[i].strip().startswith(("import ", "from ", "try:")):
                        i -= 1
                    if not lines[i].strip().startswith("# lazily:"):
                        unexplained.append(f"{path.relative_to(ROOT)}:{sub.lineno}")
    assert not unexplained, f"imports inside functions without a '# lazily:' reason: {unexplained}"


def test_no_library_file_over_500_lines():
    """A file a newcomer opens stays readable in one sitting."""
    long = {
        str(p.relative_to(ROOT)): n
        for package in ("lvo_tf", "export")
        for p in (ROOT / package).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
    }
    assert not long, f"files over 500 lines: {long}"


def _defines_flags_on_import(path: pathlib.Path) -> bool:
    """Whether the module defines absl flags at its top level (a binary)."""
    for node in ast.parse(path.read_text()).body:
        for sub in ast.walk(node):
            if isinstance(sub, (ast.FunctionDef, ast.ClassDef)):
                break
            if (
                isinstance(sub, ast.Call)
                and isinstance(sub.func, ast.Attribute)
                and sub.func.attr.startswith("DEFINE")
            ):
                return True
    return False


def test_tests_import_no_binary():
    """Two binaries imported into one test process define their flags twice
    (absl's DuplicateFlagError): tests run binaries in subprocesses and import
    only flag-free modules."""
    binaries = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for package in ("lvo_tf", "export")
        for p in (ROOT / package).rglob("*.py")
        if _defines_flags_on_import(p)
    }
    assert {"lvo_tf.segment", "export.serving_client", "export.benchmark"} <= binaries
    imported = []
    for test in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(test.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            imported += [f"{test.name}:{node.lineno} {n}" for n in names if n in binaries]
    assert not imported, f"tests import binaries: {imported}"
