import time

import pytest


@pytest.mark.parametrize("i", range(600))
def test_takes_a_while(i):
    time.sleep(0.1)
