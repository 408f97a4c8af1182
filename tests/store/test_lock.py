import os

import pytest

from screen.errors import RunError
from screen.store.lock import results_lock


def test_a_second_holder_is_refused_until_the_first_lets_go(tmp_path):
    with results_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().strip() == str(os.getpid())
        with pytest.raises(
            RunError, match=f"another screen run is using .* \\(pid {os.getpid()}\\)"
        ):
            with results_lock(tmp_path):
                pass
    with results_lock(tmp_path):  # released: the next run goes ahead
        pass
