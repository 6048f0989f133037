"""Quickstart handlers: plain functions, one per actor (payload mode)."""


def pipeline_doubler(payload: dict) -> dict:
    return {**payload, "value": payload["value"] * 2}


def pipeline_incrementer(payload: dict) -> dict:
    return {**payload, "value": payload["value"] + 5}
