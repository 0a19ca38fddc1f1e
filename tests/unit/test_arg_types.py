"""The argparse types brink's commands and the benchmarks share."""

from __future__ import annotations

import argparse

import pytest

from loadtests.arg_types import positive


@pytest.mark.parametrize("text", ["0", "-1", "nan", "inf", "-inf", "abc", ""])
def test_positive_refuses_what_is_not_a_finite_number_above_zero(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        positive(float)(text)


def test_positive_keeps_the_kind_and_names_it_for_argparse() -> None:
    assert positive(float)("2.5") == 2.5
    assert positive(int)("3") == 3
    assert positive(int).__name__ == "int"
    with pytest.raises(argparse.ArgumentTypeError):
        positive(int)("2.5")  # not an int


def test_the_benchmarks_use_the_same_check() -> None:
    from benchmarks import cli_kit

    assert cli_kit.positive is positive
