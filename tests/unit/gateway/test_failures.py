"""The shape of ``error_details`` the gateway accepts and the ones it makes itself."""

from __future__ import annotations

from typing import Any

import pytest

from asya.gateway.failures import (
    FIELDS,
    DetailsInvalid,
    checked_details,
    deadline_details,
    details_of_error_text,
)


def test_reported_details_keep_extra_keys_and_gain_every_missing_field_as_null() -> None:
    checked = checked_details({"type": "KeyError", "failed_branches": []})

    assert checked is not None
    assert set(checked) == {*FIELDS, "failed_branches"}
    assert checked["type"] == "KeyError"
    assert checked["traceback"] is None


@pytest.mark.parametrize("value", ["text", [], 1, {"message": 1}, {"attempts": 1.5}])
def test_details_of_the_wrong_shape_are_refused(value: Any) -> None:
    with pytest.raises(DetailsInvalid):
        checked_details(value)


def test_absent_details_stay_absent() -> None:
    assert checked_details(None) is None


def test_an_error_text_splits_into_code_and_message_only_when_it_starts_with_a_code() -> None:
    coded = details_of_error_text("timeout_error: Runtime timeout exceeded (5s)")
    plain = details_of_error_text("model exploded: badly")

    assert (coded["code"], coded["message"]) == ("timeout_error", "Runtime timeout exceeded (5s)")
    assert (plain["code"], plain["message"]) == (None, "model exploded: badly")


def test_the_deadline_names_the_step_last_heard_from() -> None:
    details = deadline_details(300, "shout")

    assert details["code"] == "deadline_exceeded"
    assert details["failed_step"] == "shout"
    assert details["message"] == "the job's deadline passed after 300 s"
