"""Bounds beyond the OCPP schemas (issue 11): every number a station sends must fit the
column or the arithmetic that will hold it. A schema's plan (`compile_plan`) keeps only the parts
that hold something to check; `check_bounds` runs it as Python generated once per plan, and on a
refusal walks again, keeping paths, to say where."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SchemaViolation(Exception):
    """A payload that breaks its schema, with the OCPP-J error code that reports it."""

    code: str
    message: str
    path: str

    def __str__(self) -> str:
        where = f" at {self.path}" if self.path else ""
        return f"{self.message}{where}"


# Integer fields of the 2.0.1 schemas (ids, seqNo, counts, seconds, Wh, A, V) fit a signed
# 32-bit column; anything numeric elsewhere (numbers, free-form data) must fit int64.
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# A compiled plan, only for the parts of a schema that hold something to check:
#   ("int", low, high)                      an "integer" field
#   ("num",)                                a "number" field
#   ("any",)                                free-form data (no type: DataTransfer.data)
#   ("obj", {name: plan}, open)             an object; open: extra keys are free-form
#   ("arr", plan)                           an array of plan
Plan = tuple[Any, ...]
_ANY: Plan = ("any",)


def compile_plan(
    node: dict[str, Any], definitions: dict[str, Any], seen: frozenset[str]
) -> Plan | None:
    ref = node.get("$ref")
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in seen:  # recursive definition: check it as free-form data
            return _ANY
        return compile_plan(definitions[name], definitions, seen | {name})
    kind = node.get("type")
    if kind == "integer":
        low = max(INT32_MIN, int(node.get("minimum", INT32_MIN)))
        high = min(INT32_MAX, int(node.get("maximum", INT32_MAX)))
        return ("int", low, high)
    if kind == "number":
        return ("num",)
    if kind == "array":
        items = node.get("items")
        plan = compile_plan(items, definitions, seen) if isinstance(items, dict) else _ANY
        return None if plan is None else ("arr", plan)
    if kind == "object":
        props: dict[str, Plan] = {}
        for name, sub in node.get("properties", {}).items():
            plan = compile_plan(sub, definitions, seen)
            if plan is not None:
                props[name] = plan
        is_open = node.get("additionalProperties", True) is not False
        if not props and not is_open:
            return None
        return ("obj", props, is_open)
    if kind is None and "enum" not in node:
        return _ANY
    return None  # string, boolean, enum: the schema validator bounds them


def _where(path: tuple[str | int, ...]) -> str:
    return "/".join(str(p) for p in path)


def _check_free_form(value: Any, path: tuple[str | int, ...]) -> None:
    """Free-form data: every integer within int64 (nesting is bounded at parse)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack.extend((v, (*where, k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, (*where, i)) for i, v in enumerate(item))
        elif type(item) is int and not INT64_MIN <= item <= INT64_MAX:
            raise SchemaViolation(
                "PropertyConstraintViolation", "integer out of range (int64)", _where(where)
            )


def _free_form_ok(value: Any) -> bool:
    if isinstance(value, dict):
        return all(_free_form_ok(v) for v in value.values())
    if isinstance(value, list):
        return all(_free_form_ok(v) for v in value)
    return type(value) is not int or INT64_MIN <= value <= INT64_MAX


def _bounds_ok(plan: Plan, value: Any) -> bool:
    """The hot path: True if nothing is out of bounds (no paths built)."""
    tag = plan[0]
    if tag == "int":
        return type(value) is int and plan[1] <= value <= plan[2]
    if tag == "obj":
        if not isinstance(value, dict):
            return True
        props = plan[1]
        if plan[2]:  # open: every key is looked at
            for key, sub in value.items():
                sub_plan = props.get(key)
                if not (_bounds_ok(sub_plan, sub) if sub_plan else _free_form_ok(sub)):
                    return False
            return True
        for key, sub_plan in props.items():
            sub = value.get(key)
            if sub is not None and not _bounds_ok(sub_plan, sub):
                return False
        return True
    if tag == "arr":
        if not isinstance(value, list):
            return True
        item_plan = plan[1]
        return all(_bounds_ok(item_plan, v) for v in value)
    if tag == "num":
        return type(value) is not int or INT64_MIN <= value <= INT64_MAX
    return _free_form_ok(value)


def _leaf_test(plan: Plan, x: str) -> str | None:
    """An expression that is True when `x` (not None) is within a leaf plan; None if not a leaf."""
    tag = plan[0]
    if tag == "int":
        return f"(type({x}) is int and {plan[1]} <= {x} <= {plan[2]})"
    if tag == "num":
        return f"(type({x}) is not int or {INT64_MIN} <= {x} <= {INT64_MAX})"
    if tag == "any":
        return f"_free_form_ok({x})"
    return None


def _bounds_source(plan: Plan) -> tuple[str, dict[str, Any]]:
    """Python source of `_p0(value) -> bool`, the same test as `_bounds_ok(plan, value)` with
    the plan's dispatch done once, here, instead of at every value (the write path runs it on
    every TransactionEvent and MeterValues: ~10% of the CSMS's CPU interpreted)."""
    names: dict[int, str] = {}
    chunks: list[str] = []
    env: dict[str, Any] = {"_free_form_ok": _free_form_ok}

    def function_for(step: Plan) -> str:
        if id(step) in names:
            return names[id(step)]
        name = names[id(step)] = f"_p{len(names)}"
        leaf = _leaf_test(step, "v")
        body: list[str]
        if leaf is not None:
            body = [f"    return {leaf}"]
        elif step[0] == "arr":
            item = step[1]
            test = _leaf_test(item, "x") or f"{function_for(item)}(x)"
            body = [
                "    if not isinstance(v, list):",
                "        return True",
                "    for x in v:",
                f"        if not {test}:",
                "            return False",
                "    return True",
            ]
        else:  # obj
            props, is_open = step[1], step[2]
            body = ["    if not isinstance(v, dict):", "        return True"]
            if is_open:
                table = {key: function_for(sub) for key, sub in props.items()}
                env[f"{name}_props"] = table  # names now; functions bound after exec
                body += [
                    "    for k, x in v.items():",
                    f"        f = {name}_props.get(k)",
                    "        if not (f(x) if f is not None else _free_form_ok(x)):",
                    "            return False",
                ]
            else:
                for key, sub in props.items():
                    test = _leaf_test(sub, "x") or f"{function_for(sub)}(x)"
                    body += [
                        f"    x = v.get({key!r})",
                        f"    if x is not None and not {test}:",
                        "        return False",
                    ]
            body.append("    return True")
        chunks.append(f"def {name}(v):\n" + "\n".join(body) + "\n")
        return name

    function_for(plan)
    return "\n".join(chunks), env


_bounds_functions: dict[int, tuple[Plan, Callable[[Any], bool]]] = {}


def _bounds_function(plan: Plan) -> Callable[[Any], bool]:
    known = _bounds_functions.get(id(plan))
    if known is not None and known[0] is plan:
        return known[1]
    source, env = _bounds_source(plan)
    namespace: dict[str, Any] = {}
    exec(compile(source, "<bounds plan>", "exec"), env, namespace)
    env.update(namespace)
    for key, value in list(env.items()):
        if key.endswith("_props"):  # open objects: function names -> the functions
            env[key] = {k: namespace[n] for k, n in value.items()}
    function: Callable[[Any], bool] = namespace["_p0"]
    _bounds_functions[id(plan)] = (plan, function)
    return function


def check_bounds(plan: Plan, payload: Any) -> None:
    """Raise SchemaViolation for a value the schema allowed but the CSMS cannot hold. Run on
    a payload that passed its schema (types of objects and arrays are known)."""
    if _bounds_function(plan)(payload):
        return
    # Refused: walk again, keeping paths, to say where.
    stack: list[tuple[Plan, Any, tuple[str | int, ...]]] = [(plan, payload, ())]
    while stack:
        step, value, where = stack.pop()
        tag = step[0]
        if tag == "obj":
            if not isinstance(value, dict):
                continue
            props, is_open = step[1], step[2]
            for key, sub in value.items():
                sub_plan = props.get(key)
                if sub_plan is not None:
                    stack.append((sub_plan, sub, (*where, key)))
                elif is_open:
                    _check_free_form(sub, (*where, key))
        elif tag == "arr":
            if isinstance(value, list):
                item_plan = step[1]
                stack.extend((item_plan, v, (*where, i)) for i, v in enumerate(value))
        elif tag == "int":
            if type(value) is not int:
                raise SchemaViolation(
                    "TypeConstraintViolation", f"{value!r} is not an integer", _where(where)
                )
            if not step[1] <= value <= step[2]:
                raise SchemaViolation(
                    "PropertyConstraintViolation",
                    f"{value} is out of range [{step[1]}, {step[2]}]",
                    _where(where),
                )
        elif tag == "num":
            if type(value) is int and not INT64_MIN <= value <= INT64_MAX:
                raise SchemaViolation(
                    "PropertyConstraintViolation", "number out of range (int64)", _where(where)
                )
        else:
            _check_free_form(value, where)


# ---- the bounds as schema keywords, for the Rust validator's fast path ----------------------

# Where a float comparison could round an out-of-range integer into range (|x| near 2**63),
# the schema's int64 limits stay 1024 inside: a value between them and int64's ends is refused
# by the Rust side and decided, rightly, by `check_bounds` on the slow path.
_SAFE_INT64_MIN, _SAFE_INT64_MAX = INT64_MIN + 1024, INT64_MAX - 1024
_FREE_FORM = "__csms_free_form"
_FREE_REF = {"$ref": f"#/definitions/{_FREE_FORM}"}


def bounded_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OCPP schema (draft 6) that also holds every bound `compile_plan` checks, to
    be validated as draft 4, where an integral float is not an integer (`check_bounds` refuses
    5.0 for an integer). What it accepts, the schema and the bounds both accept; it may refuse
    more (floats beyond +-9.2e18 in a number), which the slow path then decides."""
    out: dict[str, Any] = _bounded_node(schema)
    out.pop("$schema", None)  # the caller picks the draft
    definitions = {
        name: _bounded_node(node) for name, node in schema.get("definitions", {}).items()
    }
    definitions[_FREE_FORM] = {
        "minimum": _SAFE_INT64_MIN,
        "maximum": _SAFE_INT64_MAX,
        "items": _FREE_REF,
        "additionalProperties": _FREE_REF,
    }
    out["definitions"] = definitions
    return out


def _bounded_node(node: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in node:  # its siblings are ignored; the definition it names is bounded
        return dict(node)
    out = dict(node)
    kind = node.get("type")
    if kind == "integer":
        out["minimum"] = max(node.get("minimum", INT32_MIN), INT32_MIN)
        out["maximum"] = min(node.get("maximum", INT32_MAX), INT32_MAX)
    elif kind == "number":
        out["minimum"] = max(node.get("minimum", _SAFE_INT64_MIN), _SAFE_INT64_MIN)
        out["maximum"] = min(node.get("maximum", _SAFE_INT64_MAX), _SAFE_INT64_MAX)
    elif kind == "array":
        items = node.get("items")
        if isinstance(items, dict):
            out["items"] = _bounded_node(items)
        elif items is None:
            out["items"] = _FREE_REF
        else:  # a tuple of item schemas: kept, and every item at least free-form's bounds
            return {"allOf": [out, {"items": _FREE_REF}]}
    elif kind == "object":
        out["properties"] = {k: _bounded_node(v) for k, v in node.get("properties", {}).items()}
        extra = node.get("additionalProperties", True)
        if extra is True:
            out["additionalProperties"] = _FREE_REF
        elif isinstance(extra, dict):
            out["additionalProperties"] = {"allOf": [_bounded_node(extra), _FREE_REF]}
    elif not isinstance(kind, str) and "enum" not in node:
        # No type (free-form data) or a list of types: at least free-form's bounds, every
        # integer within int64.
        return {"allOf": [out, _FREE_REF]}
    return out
