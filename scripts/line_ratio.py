"""The test-to-code line ratio and the layout's figures (issue 21).

    .venv/bin/python scripts/line_ratio.py

Prints non-blank lines of Python under the tests against non-blank lines of the package
(the store's migrations left out), the lines of ``defs/`` (the Dagster wiring) and of
``dagster_kit/``, and the largest modules. Counts lines only; whether each test would
fail if its feature broke is for review. ``test_code_layout.py`` holds the size limits in CI.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CODE = ROOT / "acs_khaos_dagster"
TESTS = ROOT / "acs_khaos_dagster_tests"
MIGRATIONS = CODE / "store" / "migrations"


def non_blank_lines(folder: Path, leave_out: Path | None = None) -> int:
    total = 0
    for path in folder.rglob("*.py"):
        if leave_out is not None and path.is_relative_to(leave_out):
            continue
        text = path.read_text(encoding="utf-8")
        total += sum(1 for line in text.splitlines() if line.strip())
    return total


def main() -> None:
    code = non_blank_lines(CODE, leave_out=MIGRATIONS)
    tests = non_blank_lines(TESTS)
    print(f"tests {tests} / code {code} (non-blank lines, no migrations) = {tests / code:.2f}")
    for folder in ("defs", "dagster_kit"):
        modules = sorted((CODE / folder).glob("*.py"))
        total = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in modules)
        written = non_blank_lines(CODE / folder)
        print(f"{folder}/: {total} lines in {len(modules)} modules ({written} non-blank)")
    sizes = sorted(
        (len(p.read_text(encoding="utf-8").splitlines()), p.relative_to(ROOT))
        for p in CODE.rglob("*.py")
        if not p.is_relative_to(MIGRATIONS)
    )
    print("largest modules: " + ", ".join(f"{path} {n}" for n, path in reversed(sizes[-5:])))


if __name__ == "__main__":
    main()
