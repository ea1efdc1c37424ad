"""Procedurally generated arithmetic: an offline task of any size with exact integer golds.

Used where a real benchmark is too hard for the embedded default model (SmolLM2-135M-Instruct): the "easy"
level (one + or - on numbers up to 20) is within its reach some of the time, so RLVR has a signal to learn from.
The verifier is rewards/arithmetic.py; this module only makes problems, their golds and worked solutions.

Instruction style: every prompt asks the model to end with "The answer is N." (not `\\boxed{N}`): plain phrasing
is what small chat models produce unprompted, and the grader accepts `\\boxed{N}` too.
"""

from __future__ import annotations

import ast
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from rlvr_safety.errors import UserError

__all__ = ["ANSWER_INSTRUCTION", "LEVELS", "evaluate_expression", "generate_problems", "worked_solution"]

ANSWER_INSTRUCTION = 'End your reply with "The answer is N." where N is the final number.'

# An expression tree: an int leaf, or (op, left, right) with op in "+-*".
Node = int | tuple[str, "Node", "Node"]
_PREC = {"+": 1, "-": 1, "*": 2}
_MAX_VALUE = 10**6  # keeps every intermediate result non-negative and readable


@dataclass(frozen=True)
class _Level:
    low: int
    high: int
    ops: int
    op_choices: str
    parens: bool  # hard expressions must need parentheses; easier ones must not


LEVELS: dict[str, _Level] = {
    "easy": _Level(1, 20, 1, "+-", False),
    "medium": _Level(10, 99, 2, "+-*", False),
    "hard": _Level(100, 999, 3, "+-*", True),
}
_LEVEL_BY_NUMBER = {1: "easy", 2: "medium", 3: "hard"}

_NAMES = ("Tom", "Sara", "Ali", "Mia", "Ben", "Lena", "Ravi", "Zoe")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cookies", "books", "cards", "shells")

# Word templates per level: text with {name}/{item} and number slots, and the tree over the slots.
# Slots named k* are small counts (2-9) so that "for 437 weeks" never appears.
_WORD_TEMPLATES: dict[str, list[tuple[str, Any]]] = {
    "easy": [
        ("{name} has {a} {item} and buys {b} more. How many {item} does {name} have now?", ("+", "a", "b")),
        (
            "{name} had {a} {item} and gave {b} of them to a friend. How many {item} are left?",
            ("-", "a", "b"),
        ),
        (
            "There are {a} {item} in a basket and {b} {item} on the table. How many {item} are there in all?",
            ("+", "a", "b"),
        ),
        (
            "A shop had {a} {item}. It sold {b} of them. How many {item} does the shop have now?",
            ("-", "a", "b"),
        ),
    ],
    "medium": [
        (
            "{name} buys {k} boxes with {a} {item} in each box, then finds {b} more {item}. "
            "How many {item} does {name} have?",
            ("+", ("*", "k", "a"), "b"),
        ),
        (
            "{name} has {a} {item}, gets {b} more, then gives away {c}. How many {item} are left?",
            ("-", ("+", "a", "b"), "c"),
        ),
        (
            "A hall has {k} rows of {a} chairs. {b} chairs are taken away. How many chairs are left?",
            ("-", ("*", "k", "a"), "b"),
        ),
    ],
    "hard": [
        (
            "{name} earns {a} dollars on Monday and {b} dollars on Tuesday, earns that same two-day total "
            "every week for {k} weeks, and then spends {c} dollars. How many dollars does {name} have left?",
            ("-", ("*", ("+", "a", "b"), "k"), "c"),
        ),
        (
            "A warehouse has {a} crates. {b} crates are shipped out, and each remaining crate holds {k} {item}. "
            "Then {c} more {item} arrive. How many {item} are in the warehouse now?",
            ("+", ("*", ("-", "a", "b"), "k"), "c"),
        ),
        (
            "A library has {a} books and buys {b} more. It gives {c} books away, then buys {k} times as many "
            "books as it has. How many books did it buy that last time?",
            ("*", ("-", ("+", "a", "b"), "c"), "k"),
        ),
    ],
}


def _level_name(level: str | int) -> str:
    if isinstance(level, int) and not isinstance(level, bool) and level in _LEVEL_BY_NUMBER:
        return _LEVEL_BY_NUMBER[level]
    if isinstance(level, str) and level.lower() in LEVELS:
        return level.lower()
    raise UserError(f"unknown arithmetic level {level!r}; use one of {sorted(LEVELS)} or 1-3")


def _evaluate(node: Node) -> int:
    if isinstance(node, int):
        return node
    op, left, right = node
    a, b = _evaluate(left), _evaluate(right)
    return a + b if op == "+" else a - b if op == "-" else a * b


def _values_ok(node: Node) -> bool:
    """Every intermediate result in [0, 10^6]: no negative numbers for a small model to trip over."""
    if isinstance(node, int):
        return True
    return _values_ok(node[1]) and _values_ok(node[2]) and 0 <= _evaluate(node) <= _MAX_VALUE


def _render(node: Node) -> str:
    """Infix with only the parentheses precedence requires (left-associative + - and *)."""
    if isinstance(node, int):
        return str(node)
    op, left, right = node
    left_s, right_s = _render(left), _render(right)
    if not isinstance(left, int) and _PREC[left[0]] < _PREC[op]:
        left_s = f"({left_s})"
    if not isinstance(right, int) and (
        _PREC[right[0]] < _PREC[op] or (_PREC[right[0]] == _PREC[op] and op == "-")
    ):
        right_s = f"({right_s})"
    return f"{left_s} {op} {right_s}"


def _random_tree(rng: random.Random, spec: _Level, n_ops: int) -> Node:
    if n_ops == 0:
        return rng.randint(spec.low, spec.high)
    left_ops = rng.randint(0, n_ops - 1)
    return (
        rng.choice(spec.op_choices),
        _random_tree(rng, spec, left_ops),
        _random_tree(rng, spec, n_ops - 1 - left_ops),
    )


def _expression_problem(rng: random.Random, spec: _Level) -> tuple[str, Node]:
    while True:
        tree = _random_tree(rng, spec, spec.ops)
        text = _render(tree)
        if _values_ok(tree) and ("(" in text) == spec.parens:
            phrase = rng.choice(("What is {}?", "Calculate {}.", "Compute {}."))
            return phrase.format(text), tree


def _word_problem(rng: random.Random, spec: _Level, level: str) -> tuple[str, Node]:
    template, shape = rng.choice(_WORD_TEMPLATES[level])
    while True:
        slots = {
            s: rng.randint(2, 9) if s.startswith("k") else rng.randint(spec.low, spec.high) for s in "abck"
        }

        def fill(node: Any, slots: dict[str, int] = slots) -> Node:
            return slots[node] if isinstance(node, str) else (node[0], fill(node[1]), fill(node[2]))

        tree = fill(shape)
        if _values_ok(tree):
            text = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), **slots)
            return text, tree


def generate_problems(
    n: int, seed: int, level: str | int = "easy", kind: str = "mixed"
) -> list[dict[str, Any]]:
    """`n` problems, identical for the same (seed, level, kind).

    Each dict: id, question, prompt (question + answer instruction), answer (int), level, kind ("expression" or
    "word"), expression (the arithmetic the question stands for). `kind` is "mixed", "expression" or "word".
    """
    if n < 0:
        raise UserError(f"n must be >= 0, got {n}")
    if kind not in ("mixed", "expression", "word"):
        raise UserError(f"unknown problem kind {kind!r}; use mixed, expression or word")
    name = _level_name(level)
    spec = LEVELS[name]
    rng = random.Random(f"arithmetic:{name}:{kind}:{seed}")
    problems = []
    for i in range(n):
        this_kind = kind if kind != "mixed" else rng.choice(("expression", "word"))
        if this_kind == "word":
            question, tree = _word_problem(rng, spec, name)
        else:
            question, tree = _expression_problem(rng, spec)
        problems.append(
            {
                "id": f"arithmetic-{name}-{seed}-{i:05d}",
                "question": question,
                "prompt": f"{question}\n{ANSWER_INSTRUCTION}",
                "answer": _evaluate(tree),
                "level": name,
                "kind": this_kind,
                "expression": _render(tree),
            }
        )
    return problems


_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*"}


def _parse_expression(expression: str) -> Node:
    def convert(node: ast.AST) -> Node:
        if isinstance(node, ast.Constant) and type(node.value) is int:
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            return (_OPS[type(node.op)], convert(node.left), convert(node.right))
        raise UserError(f"not an integer +, -, * expression: {expression!r}")

    try:
        return convert(ast.parse(expression, mode="eval").body)
    except SyntaxError as exc:
        raise UserError(f"cannot parse arithmetic expression {expression!r}") from exc


def evaluate_expression(expression: str) -> int:
    """Value of an integer +, -, * expression (no eval: only numbers and those operators are accepted)."""
    return _evaluate(_parse_expression(expression))


def worked_solution(problem: Mapping[str, Any]) -> str:
    """A step-by-step reference solution (one line per operation, in evaluation order) ending in the same
    "The answer is N." form the prompts ask for; the SFT baseline trains on these."""
    tree = _parse_expression(str(problem["expression"]))
    lines = [f"We need to compute {_render(tree)}."]

    def walk(node: Node) -> int:
        if isinstance(node, int):
            return node
        op, left, right = node
        a, b = walk(left), walk(right)
        value = _evaluate((op, a, b))
        lines.append(f"Step {len(lines)}: {a} {op} {b} = {value}.")
        return value

    answer = walk(tree)
    lines.append(f"The answer is {answer}.")
    return "\n".join(lines)
