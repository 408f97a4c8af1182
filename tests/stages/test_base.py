"""The stages' shared helpers."""

import warnings

import pytest

from screen.stages.base import threaded_map


def test_threaded_map_keeps_the_order_and_leaves_the_warning_filters_as_they_were():
    def work(value: int) -> int:
        with warnings.catch_warnings():  # as the stages silence NumPy's empty-slice warnings
            warnings.simplefilter("ignore", RuntimeWarning)
            warnings.warn("empty slice", RuntimeWarning, stacklevel=1)
        return value * value

    before = list(warnings.filters)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert threaded_map(work, list(range(40)), quiet=(RuntimeWarning,)) == [
            v * v for v in range(40)
        ]
        warnings.warn("after", UserWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["after"]
    assert list(warnings.filters) == before


def test_threaded_map_raises_the_work_s_error():
    def work(value: int) -> int:
        if value == 3:
            raise ValueError("three")
        return value

    with pytest.raises(ValueError, match="three"):
        threaded_map(work, list(range(6)))
    assert threaded_map(work, []) == []
