"""The package's shape in a few numbers: files per folder, the largest module, the longest
functions, and how often `Any` stands in for a real type.

    python bench/shape.py [PACKAGE_DIR]      # default: retailpulse_cli next to bench/

A function's length is its lines from `def` to its last line (decorators and docstring
included, as a reader sees it). Issue 16 asks for no module over 600 lines and no function
over 50; this script only prints, it judges nothing.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

TOP = 5


def functions(tree: ast.AST) -> list[tuple[int, str]]:
    """(length, qualified name) of every function and method, nested ones included."""
    found: list[tuple[int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (child.end_lineno or child.lineno) - child.lineno + 1
                found.append((length, prefix + child.name))
                walk(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                walk(child, prefix + child.name + ".")
            else:
                walk(child, prefix)

    walk(tree, "")
    return found


def command_bodies(tree: ast.AST) -> list[tuple[int, str]]:
    """(body length, name) of each CLI command: a function decorated with
    `@group.command(...)` or `@app.command(...)`; its body without the docstring."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        calls = [d.func for d in node.decorator_list if isinstance(d, ast.Call)]
        if not any(isinstance(f, ast.Attribute) and f.attr == "command" for f in calls):
            continue
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            body = body[1:]  # the docstring
        if body:
            found.append(((body[-1].end_lineno or 0) - body[0].lineno + 1, node.name))
    return found


def any_count(tree: ast.AST) -> int:
    """`Any` as a name (from typing import Any) or an attribute (typing.Any)."""
    return sum(
        1
        for node in ast.walk(tree)
        if (isinstance(node, ast.Name) and node.id == "Any")
        or (isinstance(node, ast.Attribute) and node.attr == "Any")
    )


def main() -> None:
    root = (
        Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent.parent / "retailpulse_cli"
    )
    per_folder: Counter[str] = Counter()
    modules: list[tuple[int, str]] = []
    funcs: list[tuple[int, str]] = []
    commands: list[tuple[int, str]] = []
    anys = 0
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        per_folder[str(rel.parent)] += 1
        text = path.read_text(encoding="utf-8")
        modules.append((len(text.splitlines()), str(rel)))
        tree = ast.parse(text)
        funcs += [(n, f"{rel}:{name}") for n, name in functions(tree)]
        commands += [(n, f"{rel}:{name}") for n, name in command_bodies(tree)]
        anys += any_count(tree)
    print("files per folder:")
    for folder, count in sorted(per_folder.items()):
        print(f"  {folder:<32} {count:>3}")
    print(f"modules: {len(modules)}, lines: {sum(n for n, _ in modules):,}")
    print("largest modules:")
    for n, name in sorted(modules, reverse=True)[:TOP]:
        print(f"  {n:>5}  {name}")
    print("longest functions:")
    for n, name in sorted(funcs, reverse=True)[:TOP]:
        print(f"  {n:>5}  {name}")
    if commands:
        n, name = max(commands)
        print(f"longest command body: {n} lines ({name}), {len(commands)} commands")
    print(f"modules over 600 lines: {sum(1 for n, _ in modules if n > 600)}")
    print(f"functions over 50 lines: {sum(1 for n, _ in funcs if n > 50)}")
    print(f"`Any` in {root.name}: {anys}")


if __name__ == "__main__":
    main()
