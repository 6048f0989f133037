"""Picking the handler's own frame out of a traceback text (what ``asya call`` shows)."""

from __future__ import annotations

from asya.client.tracebacks import Frame, handler_frame

SIMPLE = """Traceback (most recent call last):
  File "/home/me/project/handlers.py", line 12, in parse
    return {"word": p["missing_key"]}
                    ~^^^^^^^^^^^^^^^
KeyError: 'missing_key'
"""

THROUGH_THE_RUNTIME = """Traceback (most recent call last):
  File "/work/asya/src/asya/runtime.py", line 770, in _call
    result = handler(payload)
  File "/work/asya/examples/words/handlers.py", line 8, in split
    return helper(payload)
  File "/work/asya/examples/words/helpers.py", line 3, in helper
    return payload["text"].split()
KeyError: 'text'
"""

IN_THE_POD_AND_A_LIBRARY = """Traceback (most recent call last):
  File "/opt/asya/asya_runtime.py", line 770, in _call
    result = handler(payload)
  File "/app/handler.py", line 5, in parse
    return json.loads(payload["raw"])
  File "/usr/lib/python3.12/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
  File "/usr/local/lib/python3.12/site-packages/x/y.py", line 9, in decode
    raise ValueError("bad")
ValueError: bad
"""

CHAINED = """Traceback (most recent call last):
  File "/srv/app/handlers.py", line 20, in load
    return table[key]
           ~~~~~^^^^^
KeyError: 'k'

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/asya/runtime.py", line 770, in _call
    result = handler(payload)
  File "/srv/app/handlers.py", line 30, in parse
    raise LookupFailed(key) from exc
LookupFailed: k
"""

DURING_HANDLING_IN_ASYA_ONLY = """Traceback (most recent call last):
  File "/srv/app/handlers.py", line 7, in run
    1 / 0
ZeroDivisionError: division by zero

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/srv/venv/lib/python3.11/site-packages/asya/runtime.py", line 801, in _respond
    raise ResponseError("cannot encode")
ResponseError: cannot encode
"""

EXCEPTION_GROUP = """  + Exception Group Traceback (most recent call last):
  |   File "/srv/app/handlers.py", line 14, in fan
  |     raise ExceptionGroup("many", errors)
  | ExceptionGroup: many (1 sub-exception)
  +-+---------------- 1 ----------------
    | Traceback (most recent call last):
    |   File "/srv/app/handlers.py", line 9, in one
    |     raise ValueError("v")
    | ValueError: v
    +------------------------------------
"""


def test_a_plain_traceback_gives_its_innermost_frame_with_the_source_line() -> None:
    assert handler_frame(SIMPLE) == Frame(
        "/home/me/project/handlers.py", 12, "parse", 'return {"word": p["missing_key"]}'
    )


def test_asyas_runtime_frames_are_skipped_but_a_clone_named_asya_is_user_code() -> None:
    frame = handler_frame(THROUGH_THE_RUNTIME)

    assert frame is not None
    assert frame.location == "/work/asya/examples/words/helpers.py:3"
    assert frame.source == 'return payload["text"].split()'


def test_standard_library_and_package_frames_give_way_to_the_handlers_call() -> None:
    frame = handler_frame(IN_THE_POD_AND_A_LIBRARY)

    assert frame == Frame("/app/handler.py", 5, "parse", 'return json.loads(payload["raw"])')


def test_a_chained_exception_shows_the_frame_of_the_one_raised_last() -> None:
    frame = handler_frame(CHAINED)

    assert frame is not None
    assert (frame.line, frame.source) == (30, "raise LookupFailed(key) from exc")


def test_when_the_last_exception_has_only_asya_frames_the_earlier_one_is_shown() -> None:
    frame = handler_frame(DURING_HANDLING_IN_ASYA_ONLY)

    assert frame == Frame("/srv/app/handlers.py", 7, "run", "1 / 0")


def test_exception_group_frames_are_read_through_their_bars() -> None:
    frame = handler_frame(EXCEPTION_GROUP)

    assert frame == Frame("/srv/app/handlers.py", 9, "one", 'raise ValueError("v")')


def test_no_traceback_or_no_frames_gives_none() -> None:
    assert handler_frame(None) is None
    assert handler_frame("") is None
    assert handler_frame("KeyError: 'x'\n") is None
    only_asya = '  File "/x/site-packages/asya/runtime.py", line 1, in f\n    g()\n'
    assert handler_frame(only_asya) is None


def test_a_frame_without_source_text_keeps_an_empty_source() -> None:
    text = (
        'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\nNameError: x\n'
    )

    assert handler_frame(text) == Frame("<string>", 1, "<module>", "")
