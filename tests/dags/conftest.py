"""The fault matrix's table in pytest's terminal summary (shown whatever the capture settings)."""

from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter):
    matrix = sys.modules.get("tests.dags.test_fault_matrix")
    if matrix is not None and matrix.OUTCOMES:
        terminalreporter.section("fault matrix")
        matrix.print_matrix(terminalreporter.write_line)
