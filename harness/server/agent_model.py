"""The scripted core model of reference agents: deterministic replies, tool calls and arithmetic.

It behaves like an LLM agent so that tests can assert exact text: it answers a turn with text,
or asks for a tool call first and answers with the tool's result. No I/O and no clocks: the
agent runtime (`agents.py`) paces what it returns.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Core models the reference server answers for (any `@version`): the docs' own names.
CORE_MODELS = frozenset({"infsh/claude-sonnet-4", "infsh/claude-haiku-4", "infsh/gpt-4o",
                         "infsh/scripted-llm"})
CALCULATOR = "calculator"
LONG_REPLY_WORDS = 240
ECHO_CHARS = 400

_EXPRESSION = re.compile(r"(?<![\w.])[-(\d][\d\s.+\-*/%()]*[\d)]")
_OPERATOR = re.compile(r"[\d)]\s*[-+*/%]")
_NAME_IS = re.compile(r"\bmy name is ([A-Za-z][\w-]{0,39})", re.IGNORECASE)
_ASK_NAME = re.compile(r"\bwhat is my name\b|\bwho am i\b", re.IGNORECASE)
_FAIL = re.compile(r"\bfail\b", re.IGNORECASE)
_LONG = re.compile(r"\b(long|story)\b", re.IGNORECASE)

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}


class NotArithmetic(ValueError):
    """The expression is not simple arithmetic on numbers (or is too big to compute)."""


def evaluate(expression: str) -> str:
    """Simple arithmetic on number literals (+ - * / // % **), safely: no eval(), no names."""
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as exc:
        raise NotArithmetic(f"not arithmetic: {expression!r}") from exc
    value = _eval(tree.body)
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        value = int(value)
    return str(value)


def _eval(node: ast.expr) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        number = node.value
        assert isinstance(number, int | float)
        return number
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        inner = _eval(node.operand)
        return -inner if isinstance(node.op, ast.USub) else inner
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and (abs(right) > 64 or abs(left) > 10**6):
            raise NotArithmetic("exponent too large")
        try:
            result: int | float = _BINARY[type(node.op)](left, right)
        except (ZeroDivisionError, OverflowError) as exc:
            raise NotArithmetic(str(exc)) from exc
        if abs(result) > 10**30:
            raise NotArithmetic("result too large")
        return result
    raise NotArithmetic(f"not allowed in arithmetic: {type(node).__name__}")


def tokens(text: str) -> list[str]:
    """The reply as the model streams it: words with their trailing space (joined = text)."""
    return re.findall(r"\S+\s*", text) or ([text] if text else [])


@dataclass(frozen=True)
class ToolSpec:
    """A tool the agent offers, as the SDK's tool builder describes it."""

    name: str
    type: str  # client, internal, app, ...
    require_approval: bool = False
    display_name: str = ""


@dataclass(frozen=True)
class ToolCall:
    """The model wants `tool` called with `arguments` before it answers."""

    tool: ToolSpec
    arguments: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    """The model's answer: text to stream, then success or a failure with `error`."""

    text: str
    error: str | None = None


@dataclass
class Memory:
    """What the model remembers of one chat (its multi-turn memory)."""

    name: str | None = None
    facts: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str


def turn(text: str, tools: dict[str, ToolSpec], memory: Memory,
         attachments: tuple[Attachment, ...] = ()) -> Reply | ToolCall:
    """The model's first move on a user message: a reply, or a tool call to make first."""
    if _FAIL.search(text):
        return Reply("Let me think about that", error="core model failed: scripted failure")
    expression = _expression(text)
    if expression is not None:
        tool = tools.get(CALCULATOR) or ToolSpec(CALCULATOR, "internal", display_name="Calculator")
        return ToolCall(tool, {"expression": expression})
    prefix = _attachments_note(attachments)
    if named := _NAME_IS.search(text):
        memory.name = named.group(1)
        return Reply(f"{prefix}Nice to meet you, {memory.name}.")
    if _ASK_NAME.search(text):
        if memory.name:
            return Reply(f"{prefix}Your name is {memory.name}.")
        return Reply(f"{prefix}You have not told me your name.")
    if _LONG.search(text):
        words = " ".join(f"word{i}" for i in range(1, LONG_REPLY_WORDS + 1))
        return Reply(f"{prefix}Once upon a time: {words}. The end.")
    # An echo of at most ECHO_CHARS: a huge message must not make a run that lasts for hours.
    return Reply(f"{prefix}You said: {text[:ECHO_CHARS]}")


def after_tool(call: ToolCall, result: str | None, rejected: str | None = None) -> Reply:
    """The answer once the tool call ended: with its result, or saying it was refused."""
    expression = call.arguments.get("expression", "")
    if rejected is not None:
        reason = f" ({rejected})" if rejected else ""
        return Reply(f"I did not run {call.tool.name}: the call was rejected{reason}.")
    if result is None:
        return Reply(f"I could not compute {expression}.")
    return Reply(f"{expression} = {result}.")


def server_tool_result(call: ToolCall) -> str:
    """A server-side tool's result (the built-in calculator); errors become the result text."""
    try:
        return evaluate(str(call.arguments.get("expression", "")))
    except NotArithmetic as exc:
        return f"error: {exc}"


def _expression(text: str) -> str | None:
    """The first arithmetic expression in the text (numbers, operators, parentheses), or None."""
    for match in _EXPRESSION.finditer(text):
        candidate = " ".join(match.group(0).split())
        if _OPERATOR.search(candidate):
            return candidate
    return None


def _attachments_note(attachments: tuple[Attachment, ...]) -> str:
    if not attachments:
        return ""
    names = ", ".join(f"{a.filename or 'unnamed'} ({a.content_type})" for a in attachments)
    return f"I received {len(attachments)} attachment(s): {names}. "
