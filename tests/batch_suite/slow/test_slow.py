import time

import pytest


@pytest.mark.parametrize("i", range(40))
def test_slowly(i):
    time.sleep(0.1)
    assert i != 7
