"""The tools the agent may call. Add your own: a typed function with a docstring, decorated with @tool.

The model reads each tool's name, docstring and argument types to decide when and how to call it.
"""

from __future__ import annotations

import ast
import operator
import re

from langchain_core.tools import tool

_OPERATORS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
# Runs of digits, operators, dots and brackets: "What is (2 + 3) * 4?" holds "(2 + 3) * 4".
_ARITHMETIC = re.compile(r"[\d.()+\-*/%\s]*\d[\d.()+\-*/%\s]*")
_MAX_EXPONENT = 100  # 9 ** 9 ** 9 would keep the server busy for hours


def _evaluate(node: ast.AST) -> int | float:
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left), _evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError(f"exponent {right} is too large")
        return _OPERATORS[type(node.op)](left, right)
    raise ValueError("only numbers and + - * / // % ** are allowed")


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as "6 * 7" or "(2 + 3) / 4" and return the result."""
    candidates = [match.strip() for match in _ARITHMETIC.findall(expression) if match.strip()]
    if not candidates:
        return f"no arithmetic expression in {expression!r}"
    # The longest run is the expression; shorter ones are stray numbers around it.
    text = max(candidates, key=len)
    try:
        result = _evaluate(ast.parse(text, mode="eval"))
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError) as exc:
        return f"cannot evaluate {text!r}: {exc}"
    return f"{text} = {result:g}" if isinstance(result, float) else f"{text} = {result}"


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


TOOLS = [calculator, word_count]
