"""A small example suite for test batches: `%jobctl test example_tests`.

Most tests pass; two fail on purpose, so that "Rerun failed" has something to do. Each test
takes a moment, so the live view has progress to show.
"""

import time

import pytest


@pytest.mark.parametrize("size", [1, 2, 4, 8, 16, 32])
def test_sum_of_range(size):
    time.sleep(0.2)
    assert sum(range(size)) == size * (size - 1) // 2


@pytest.mark.parametrize("word", ["loss", "accuracy", "epoch"])
def test_words_round_trip(word):
    time.sleep(0.2)
    assert word.upper().lower() == word


def test_learning_rate_schedule_decays():
    time.sleep(0.2)
    rates = [0.1 * 0.5**step for step in range(5)]
    assert rates == sorted(rates, reverse=True)


def test_fails_on_purpose():
    time.sleep(0.2)
    assert 0.1 + 0.2 == 0.3, "floating point strikes again"


def test_errors_on_purpose():
    time.sleep(0.2)
    raise RuntimeError("this example test raises to show a failure with a traceback")
