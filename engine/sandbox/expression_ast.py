"""The expression allowlist: normalise designer text, check its syntax tree, rewrite it into guarded calls.

An expression compiles to `lambda _d, _b: ...` where `_d` is the task data (every variable becomes
`_d['name']`) and `_b` is the per-evaluation budget that performs sized operations, helper and method calls.
Helpers are globals of the lambda, so a data variable named `date` or `days` cannot shadow the helper.
"""

import ast
import io
import re
import tokenize
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

from engine.sandbox.errors import CodeRejected
from engine.sandbox.helpers import HELPERS
from engine.sandbox.helpers import c_level_import
from engine.sandbox.methods import EXPRESSION_ATTRIBUTE_NAMES
from engine.sandbox.methods import EXPRESSION_METHOD_NAMES

MAX_EXPRESSION_CHARS = 10_000
MAX_SYNTAX_DEPTH = 100
DATA, BUDGET = "_d", "_b"
_LITERALS = {"true": "True", "false": "False", "null": "None"}  # same lengths: replaced in place
# '@' is an ast.operator too; visit_BinOp refuses it before its operator is visited.
_FREE_OPERATORS = (ast.boolop, ast.cmpop, ast.unaryop, ast.operator, ast.Load)
_GUARDED_OPERATORS = {ast.Mult: "mul", ast.Pow: "power", ast.LShift: "lshift", ast.Add: "add", ast.Mod: "mod"}
_CONSTANT_TYPES = (str, int, float, bool, type(None))
_LONG_NUMBER = re.compile(r"\d{4,}")
_HINTS = {
    "ListComp": "comprehensions are not allowed in expressions; move the loop into a script task",
    "SetComp": "comprehensions are not allowed in expressions; move the loop into a script task",
    "DictComp": "comprehensions are not allowed in expressions; move the loop into a script task",
    "GeneratorExp": "comprehensions are not allowed in expressions; move the loop into a script task",
    "Lambda": "'lambda' is not allowed in expressions; use the helpers listed in the docs instead",
    "NamedExpr": "':=' is not allowed in expressions; set variables in a script task",
    "Starred": "'*' unpacking is not allowed in expressions; pass the values one by one",
    "MatMult": "'@' is not allowed in expressions",
}


class Compiled(NamedTuple):
    """A checked expression: the function to call, the variables it reads, whether it needs a budget."""

    function: Callable[[Any, Any], Any]
    names: frozenset[str]
    needs_budget: bool


def reject(node: ast.AST | None, message: str) -> CodeRejected:
    """A CodeRejected for `node`, with its line and column in the message."""
    line = getattr(node, "lineno", None) or 1
    col = getattr(node, "col_offset", None)
    return CodeRejected(f"Line {line}: {message}.", line=line, col=col)


def normalize(text: str) -> str:
    """Designer text as Python: strip, unwrap a whole `${...}`, map true/false/null to True/False/None."""
    source = text.strip()
    if source.startswith("#{"):
        raise reject(None, "bean expressions #{...} are Java/JUEL; write a Python expression such as "
                           "amount > 10000 or status == 'won' instead")
    if source.startswith("${") and _closing_brace(source, 1) == len(source) - 1:
        source = source[2:-1].strip()
    if any(word in source for word in _LITERALS):
        source = _map_literals(source)
    return source


def _closing_brace(text: str, start: int) -> int:
    """Index of the brace closing the one at `start`, skipping quoted text; -1 if unbalanced."""
    depth, quote, i = 0, "", start
    while i < len(text):
        char = text[i]
        if quote:
            if char == "\\":
                i += 1
            elif char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _map_literals(source: str) -> str:
    """Replace the names true/false/null (not text inside strings, not attributes) token by token."""
    lines = source.splitlines(keepends=True)
    offsets = [0]
    for line in lines:
        offsets.append(offsets[-1] + len(line))
    chars = list(source)
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME and token.string in _LITERALS and previous != ".":
                start = offsets[token.start[0] - 1] + token.start[1]
                chars[start:start + len(token.string)] = _LITERALS[token.string]
            previous = token.string
    except (tokenize.TokenError, SyntaxError):
        return source  # the parser reports the problem with a better message
    return "".join(chars)


def compile_expression(text: str) -> Compiled:
    """Check `text` against the allowlist and compile it; raises CodeRejected."""
    if not isinstance(text, str):
        raise CodeRejected(f"An expression must be text, not {type(text).__name__}.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise reject(None, f"the expression has {len(text):,} characters, more than the "
                           f"{MAX_EXPRESSION_CHARS:,} allowed; move the logic into a script task")
    source = normalize(text)
    if not source:
        raise reject(None, "the expression is empty; write a condition such as amount > 10000")
    tree = _parse(source)
    check_depth(tree, MAX_SYNTAX_DEPTH)
    rewriter = _Rewriter()
    body = rewriter.visit(tree.body)
    arguments = ast.arguments(posonlyargs=[], args=[ast.arg(DATA), ast.arg(BUDGET)], kwonlyargs=[],
                              kw_defaults=[], defaults=[])
    wrapper = ast.fix_missing_locations(ast.Expression(ast.Lambda(arguments, body)))
    namespace = {"__builtins__": {"__import__": c_level_import}, **HELPERS}
    function = eval(compile(wrapper, "<expression>", "eval"), namespace)
    return Compiled(function, frozenset(rewriter.names), rewriter.needs_budget)


def _parse(source: str) -> ast.Expression:
    try:
        # Parenthesised so a condition may span lines as written in the modeler; line numbers stay the same.
        return ast.parse(f"({source}\n)", "<expression>", "eval")
    except SyntaxError as exc:
        hint = "write one Python expression, e.g. amount > 10000 and approved"
        if "&&" in source or "||" in source or "!" in source.replace("!=", ""):
            hint = "use 'and', 'or' and 'not' instead of '&&', '||' and '!'"
        elif "${" in source:
            hint = "'${...}' must wrap the whole expression"
        line = exc.lineno or 1
        raise CodeRejected(f"Line {line}: {exc.msg}; {hint}.", line=line, col=exc.offset) from None
    except (RecursionError, MemoryError):
        raise reject(None, "the expression is nested too deeply; split it into smaller steps") from None


def check_depth(tree: ast.AST, limit: int) -> None:
    """Refuse syntax nested deeper than `limit` (walked iteratively, so a bomb cannot recurse here)."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise reject(node, "the code is nested too deeply; split it into smaller steps")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


def _budget_call(method: str, args: list[ast.expr], keywords: list[ast.keyword] | None = None) -> ast.Call:
    func = ast.Attribute(ast.Name(BUDGET, ast.Load()), method, ast.Load())
    return ast.Call(func, args, keywords or [])


class _Rewriter(ast.NodeTransformer):
    """Visits only allowlisted nodes; anything else is rejected with a sentence naming it."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.needs_budget = False

    def visit(self, node: ast.AST) -> Any:
        if isinstance(node, _FREE_OPERATORS):
            return node
        method = getattr(self, f"visit_{type(node).__name__}", None)
        if method is None:
            name = type(node).__name__
            raise reject(node, _HINTS.get(name, f"'{name}' is not allowed in expressions"))
        return method(node)

    def _children(self, node: ast.AST) -> ast.AST:
        return super().generic_visit(node)

    visit_BoolOp = visit_UnaryOp = visit_Compare = visit_IfExp = _children
    visit_List = visit_Tuple = visit_Set = visit_keyword = visit_JoinedStr = _children

    def _budget(self, node: ast.AST, method: str, args: list, keywords: list | None = None) -> ast.Call:
        self.needs_budget = True
        return ast.copy_location(_budget_call(method, args, keywords), node)

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if not isinstance(node.value, _CONSTANT_TYPES):
            raise reject(node, f"{type(node.value).__name__} literals are not allowed in expressions")
        return node

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id.startswith("_"):
            raise reject(node, f"names starting with '_' are reserved; rename {node.id!r}")
        self.names.add(node.id)
        lookup = ast.Subscript(ast.Name(DATA, ast.Load()), ast.Constant(node.id), ast.Load())
        return ast.copy_location(lookup, node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        if any(key is None for key in node.keys):
            raise reject(node, "'**' unpacking is not allowed in expressions")
        return self._children(node)

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        if isinstance(node.op, ast.MatMult):
            raise reject(node, _HINTS["MatMult"])
        node = self._children(node)
        guard = _GUARDED_OPERATORS.get(type(node.op))
        return self._budget(node, guard, [node.left, node.right]) if guard else node

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if not isinstance(node.slice, ast.Slice):
            return self._children(node)
        bounds = [self.visit(part) if part else ast.Constant(None)
                  for part in (node.slice.lower, node.slice.upper, node.slice.step)]
        return self._budget(node, "slice", [self.visit(node.value), *bounds])

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        self._check_attribute(node, EXPRESSION_ATTRIBUTE_NAMES, "attribute")
        return self._budget(node, "attr", [self.visit(node.value), ast.Constant(node.attr)])

    def visit_Call(self, node: ast.Call) -> ast.AST:
        if any(keyword.arg is None for keyword in node.keywords):
            raise reject(node, "'**' unpacking is not allowed in expressions")
        args = [self.visit(arg) for arg in node.args]
        keywords = [self.visit(keyword) for keyword in node.keywords]
        if isinstance(node.func, ast.Name):
            return self._call_helper(node, args, keywords)
        if isinstance(node.func, ast.Attribute):
            self._check_attribute(node.func, EXPRESSION_METHOD_NAMES, "method")
            receiver = self.visit(node.func.value)
            return self._budget(node, "meth", [receiver, ast.Constant(node.func.attr), *args], keywords)
        raise reject(node, "only helper functions and a few text, list and dict methods can be called")

    def _call_helper(self, node: ast.Call, args: list, keywords: list) -> ast.AST:
        name = node.func.id
        if name not in HELPERS:
            raise reject(node, f"{name!r} is not a function expressions can call; use one of "
                               f"{', '.join(sorted(HELPERS))}")
        if name in ("now", "today"):
            if args or keywords:
                raise reject(node, f"{name}() takes no arguments")
            return self._budget(node, name, [])
        return self._budget(node, "call", [ast.Name(name, ast.Load()), *args], keywords)

    def _check_attribute(self, node: ast.Attribute, allowed: frozenset[str], kind: str) -> None:
        if node.attr.startswith("_"):
            raise reject(node, f"attributes starting with '_' are not allowed; remove '.{node.attr}'")
        if node.attr not in allowed:
            raise reject(node, f"'.{node.attr}' is not an allowed {kind} in expressions; allowed: "
                               f"{', '.join(sorted(allowed))}")

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        check_format_spec(node)
        node.value = self._budget(node, "fv", [self.visit(node.value)])
        return node


def check_format_spec(node: ast.FormattedValue) -> None:
    """Refuse computed f-string specs and widths or precisions of four digits or more."""
    spec = node.format_spec
    if spec is None:
        return
    parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
    for part in parts:
        if not (isinstance(part, ast.Constant) and isinstance(part.value, str)):
            raise reject(node, "f-string format specs must be fixed text such as ':.2f'")
        if _LONG_NUMBER.search(part.value):
            raise reject(node, f"the f-string format spec {part.value!r} asks for a width or precision of "
                               "1000 or more; use a smaller number")
