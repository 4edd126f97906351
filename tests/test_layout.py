"""The README's Layout is the newcomer's map: it must name every module, folder and script, and the
package must keep one job per folder, with no two modules importing each other."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.project import ROOT

PACKAGE = ROOT / "src" / "rnnlab"


def layout_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Layout") :]
    return section.split("```", 2)[1].splitlines()


def folder_entries() -> dict[str, str]:
    """Each folder of the Layout (`src/rnnlab/run/`, `scripts/`, ...) with the text that describes it:
    its own line and the lines under it, up to the next entry at the same or a shallower depth."""
    entries: dict[str, str] = {}
    stack: list[tuple[int, str]] = []  # (indent, path) of the folders above the current line
    current: str | None = None
    for line in layout_block():
        match = re.match(r"^( *)(\S+/)(?:\s|$)", line)
        if match and not line.startswith(" " * 25):  # a folder's own line, not a continuation
            indent = len(match.group(1))
            while stack and stack[-1][0] >= indent:
                stack.pop()
            parent = stack[-1][1] if stack else ""
            current = parent + match.group(2)
            stack.append((indent, current))
            entries[current] = line
        elif current is not None:
            entries[current] += "\n" + line
    return entries


def named_in(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None


def test_every_module_folder_and_script_is_in_the_layout():
    entries = folder_entries()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" or "__pycache__" in path.parts:
            continue
        folder = "src/" + str(path.parent.relative_to(ROOT / "src")) + "/"
        text = "\n".join(v for k, v in entries.items() if k == folder)
        if not (named_in(text, path.stem) or named_in(text, path.name)):
            missing.append(str(path.relative_to(ROOT)))
    for folder in ("scripts", "benchmarks"):
        for path in sorted((ROOT / folder).glob("*.py")):
            if not (
                named_in(entries.get(f"{folder}/", ""), path.stem)
                or named_in(entries.get(f"{folder}/", ""), path.name)
            ):
                missing.append(str(path.relative_to(ROOT)))
    for path in sorted(p for p in PACKAGE.rglob("*") if p.is_dir() and p.name != "__pycache__"):
        if f"src/{path.relative_to(ROOT / 'src')}/" not in entries:
            missing.append(f"{path.relative_to(ROOT)}/")
    assert not missing, f"the README's Layout does not name: {', '.join(missing)}"


def test_the_layout_names_nothing_that_is_gone():
    entries = folder_entries()
    gone = [folder for folder in entries if folder.startswith("src/") and not (ROOT / folder).is_dir()]
    assert not gone, f"the README's Layout names folders that do not exist: {gone}"


def imports_of(path: Path) -> set[str]:
    """The rnnlab modules a module imports, at any depth of its code (a function's import counts too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnnlab"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("rnnlab"))
    return found


def test_no_two_modules_import_each_other():
    modules = {
        ".".join(path.relative_to(ROOT / "src").with_suffix("").parts): path
        for path in PACKAGE.rglob("*.py")
        if path.name != "__init__.py"
    }
    graph = {
        name: {m for m in imports_of(path) if m in modules and m != name} for name, path in modules.items()
    }
    pairs = sorted(
        {tuple(sorted((a, b))) for a, deps in graph.items() for b in deps if a in graph.get(b, ())}
    )
    assert not pairs, f"modules that import each other: {pairs}"
