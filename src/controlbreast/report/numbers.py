"""Formatting numbers the same way on the page, in the Markdown twin and in the tests."""

from __future__ import annotations


def num(value, digits: int = 3) -> str:
    """A number with ``digits`` decimals (integers as they are); "n/a" for None or text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return "n/a"


def signed(value: float | None, digits: int = 3) -> str:
    """``+0.012`` / ``−0.003`` (a true minus sign, as in print)."""
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}".replace("-", "\u2212")


def interval(value: dict | None, digits: int = 3, sign: bool = False) -> str:
    """``0.912 [0.871, 0.948]`` from a bootstrap ``{"estimate", "low", "high"}`` dict."""
    if not isinstance(value, dict) or value.get("estimate") is None:
        return "n/a"
    form = (lambda v: signed(v, digits)) if sign else (lambda v: num(v, digits))
    bounds = ("low", "high")
    if any(value.get(b) is None for b in bounds):
        return form(value["estimate"])
    return f"{form(value['estimate'])} [{form(value['low'])}, {form(value['high'])}]"


def p_value(value: float | None) -> str:
    """``p = 0.15``; ``p < 0.001`` when tiny."""
    if value is None:
        return "p n/a"
    return "p < 0.001" if value < 0.001 else f"p = {value:.3g}"
