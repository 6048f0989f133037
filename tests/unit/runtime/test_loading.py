"""Handler loading: import paths, class handlers and every way loading can fail."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from asya.runtime import HandlerLoadError, load_handler

SOURCE = """
import itertools

built = itertools.count()

def handle(payload):
    return {"handled": payload}

class Model:
    def __init__(self, size="small"):
        self.size = size
        self.serial = next(built)

    def predict(self, payload):
        return {"size": self.size, "serial": self.serial}

class Broken:
    def __init__(self):
        raise OSError("weights not found")

    def predict(self, payload):
        return payload

class Plain:
    pass

VALUE = 42
"""


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A uniquely named handler module importable from sys.path."""
    name = f"handlers_{uuid.uuid4().hex[:8]}"
    package = tmp_path / f"{name}_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "inner.py").write_text(SOURCE)
    (tmp_path / f"{name}.py").write_text(SOURCE)
    (tmp_path / f"{name}_bad.py").write_text("import asya_missing_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def test_function_handler(module: str) -> None:
    assert load_handler(f"{module}.handle")(1) == {"handled": 1}


def test_function_in_a_package_module(module: str) -> None:
    assert load_handler(f"{module}_pkg.inner.handle")(2) == {"handled": 2}


def test_class_handler_is_built_once_with_its_defaults(module: str) -> None:
    predict = load_handler(f"{module}.Model.predict")

    assert predict(None) == predict(None) == {"size": "small", "serial": 0}


@pytest.mark.parametrize(
    ("suffix", "complaint"),
    [
        (".missing", "has no attribute 'missing'"),
        (".Model.missing", ".Model has no attribute 'missing'"),
        (".VALUE", "is not callable (it is int)"),
        (".Plain", "is a class: name its method"),
        (".Broken.predict", "Broken() raised OSError: weights not found"),
        ("_bad.handle", "No module named 'asya_missing_dependency_xyz'"),
        ("_nowhere.handle", "no module named"),
    ],
)
def test_load_failures_say_why(module: str, suffix: str, complaint: str) -> None:
    with pytest.raises(HandlerLoadError) as caught:
        load_handler(module + suffix)

    assert complaint in str(caught.value)


def test_failure_in_user_code_keeps_its_traceback(module: str) -> None:
    with pytest.raises(HandlerLoadError) as caught:
        load_handler(f"{module}.Broken.predict")

    assert 'raise OSError("weights not found")' in caught.value.trace
    assert "importlib" not in caught.value.trace
