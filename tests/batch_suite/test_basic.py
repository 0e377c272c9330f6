"""A suite with every outcome, run as a jobctl test batch by tests/test_batches.py."""

import sys

import pytest


def test_passes():
    assert 1 + 1 == 2


@pytest.mark.parametrize("n", [1, 2])
def test_parametrized(n):
    assert n > 0


def test_fails():
    print("captured output of a failing test")
    assert 2 + 2 == 5, "arithmetic is broken"


@pytest.mark.skip(reason="not today")
def test_skipped():
    pass


@pytest.mark.xfail(reason="known bug")
def test_xfail():
    assert False  # noqa: B011 (the point of an xfail test)


@pytest.mark.xfail(reason="fixed meanwhile")
def test_xpass():
    assert True


@pytest.fixture
def broken_fixture():
    raise RuntimeError("fixture exploded")


def test_error_in_fixture(broken_fixture):
    pass


def test_slow():
    import time

    time.sleep(0.3)
    print("slow done", file=sys.stderr)
