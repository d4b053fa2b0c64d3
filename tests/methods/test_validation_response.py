"""The instruction method's validation response on the console: one short line (a random model
writes 64 repeated words), the whole response in run.log and the report."""

from __future__ import annotations

from hf_finetune.methods.instruction.generate import SHOWN_RESPONSE, shortened


def test_a_long_response_is_one_short_line():
    response = "the the the\nthe " * 40
    shown = shortened(response)
    assert "\\n" not in shown and len(shown) == SHOWN_RESPONSE + 2 and shown.endswith("…'")


def test_a_short_response_is_shown_whole():
    assert shortened("Paris.") == "'Paris.'" and shortened("") == "''"
