"""Classification (pure): run records → findings with stable codes and severities."""

from .codes import CODES, Code
from .findings import Finding, Severity

__all__ = ["CODES", "Code", "Finding", "Severity"]
