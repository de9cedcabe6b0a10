"""Fixtures of the native tests: LLVM 19 and rustc are required, never skipped.

A machine without clang-19/llvm-19 fails these tests with the package to install
(scripts/test.sh installs them), so that a missing toolchain is never a silent pass.
"""

from __future__ import annotations

import ctypes

import pytest

from kcovdf.native import selftest, toolchain


@pytest.fixture(scope="session")
def llvm() -> None:
    """LLVM 19's tools and headers (the plugin builds), or a failure naming the packages."""
    try:
        toolchain.plugin()
        toolchain.runtime_bitcode()
    except toolchain.ToolchainError as exc:
        pytest.fail(f"the native tests need LLVM 19: {exc}")


@pytest.fixture(scope="session")
def eight_args_c(llvm: None) -> ctypes.CDLL:
    """The series' eight_args_c library, built with kcovdf cc and loaded."""
    return ctypes.CDLL(str(selftest.library("eight_args_c")))
