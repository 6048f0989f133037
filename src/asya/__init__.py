"""Asya: plain Python functions become queue-driven, autoscaling actors."""

__version__ = "0.1.0"

__all__ = ["__version__"]
