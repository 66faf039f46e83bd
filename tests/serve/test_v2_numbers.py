"""The fast reading of OIP v2 numbers, and the text sent that the prediction log takes."""

from __future__ import annotations

import orjson

from conveyor.serve import v2_numbers


def test_the_data_text_is_found_only_when_it_is_certain() -> None:
    head = b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP64", "data" : [1, 2.5, 3]}]}'
    assert v2_numbers.data_text(head) == b"[1, 2.5, 3]"
    twice = head.replace(b'"FP64"', b'"FP64", "parameters": {"data": [1]}')
    assert v2_numbers.data_text(twice) is None
    assert v2_numbers.data_text(head.replace(b'"data"', b'"values"')) is None


def test_rows_are_cut_at_every_width_th_comma() -> None:
    text = b"[1, 2.5, -3e-7, 4, 5, 6]"
    assert orjson.loads(v2_numbers.rows_text(text, (2, 3)) or b"") == [[1, 2.5, -3e-7], [4, 5, 6]]
    assert orjson.loads(v2_numbers.rows_text(text, (6, 1)) or b"") == [
        [1],
        [2.5],
        [-3e-7],
        [4],
        [5],
        [6],
    ]
    assert v2_numbers.rows_text(text, (6,)) == text
    assert v2_numbers.rows_text(text, (2, 2)) is None  # not that many numbers
    assert v2_numbers.rows_text(text, (5,)) is None
