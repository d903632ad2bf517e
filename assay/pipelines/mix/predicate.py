"""A pool predicate is data: a recipe (or an ablation plan's eval set) may come from someone else, and DuckDB SQL
can read files, write them and load extensions. So a predicate is parsed with DuckDB's own parser and accepted
only as ONE expression over the pool's columns built from comparisons, boolean logic, IN, BETWEEN, LIKE/ILIKE,
IS NULL, CASE, CAST, arithmetic and the pure scalar functions in FUNCTIONS: no statement, no subquery, no table
or file function. What runs is DuckDB's rendering of the checked expression, never the text as given, and it
runs on a locked connection (assay/curation/duckdb_locked.py) as a second wall.
"""
from __future__ import annotations

import json
from collections.abc import Iterable

from assay.groundwork.config import ConfigError

#: operators (DuckDB's names for them) and pure scalar functions a predicate may call
FUNCTIONS = frozenset({
    "+", "-", "*", "/", "//", "%", "^", "**", "||",
    "~~", "!~~", "~~*", "!~~*", "~~~", "!~~~",  # LIKE, NOT LIKE, ILIKE, NOT ILIKE, GLOB, NOT GLOB
    "length", "len", "strlen", "length_grapheme", "lower", "upper", "lcase", "ucase", "trim", "ltrim", "rtrim",
    "substring", "substr", "left", "right", "strpos", "instr", "position", "contains", "starts_with",
    "ends_with", "prefix", "suffix", "replace", "concat", "concat_ws", "reverse", "split_part",
    "regexp_matches", "regexp_full_match", "regexp_extract", "regexp_replace", "like_escape", "ilike_escape",
    "abs", "round", "floor", "ceil", "ceiling", "trunc", "sqrt", "ln", "log", "log2", "log10", "exp", "pow",
    "power", "sign", "least", "greatest", "isnan", "isinf", "isfinite", "coalesce", "ifnull", "nullif",
    "list_value", "list_contains", "list_has", "array_contains", "array_has", "list_has_any", "list_has_all",
    "array_length", "list_extract", "list_element", "json_extract", "json_extract_string",
})
#: expression kinds of DuckDB's parse tree a predicate may hold (FUNCTION: only those in FUNCTIONS)
CLASSES = frozenset({"CONSTANT", "COLUMN_REF", "COMPARISON", "CONJUNCTION", "OPERATOR", "BETWEEN", "CASE", "CAST",
                     "TYPE", "FUNCTION"})
OPERATORS = frozenset({"OPERATOR_NOT", "OPERATOR_IS_NULL", "OPERATOR_IS_NOT_NULL", "COMPARE_IN", "COMPARE_NOT_IN",
                       "OPERATOR_COALESCE", "OPERATOR_NULLIF", "ARRAY_EXTRACT", "STRUCT_EXTRACT"})
HINT = ("a predicate is one condition over the pool's columns, e.g. \"language = 'en' AND n_words >= 50\"; "
        "allowed: comparisons, AND/OR/NOT, IN, BETWEEN, LIKE/ILIKE, IS NULL, CASE, CAST, arithmetic and pure "
        "functions such as length, lower, regexp_matches, starts_with, contains, abs, round, coalesce")


class PredicateError(ValueError):
    """Why a predicate is refused (the caller names the field)."""


def checked_predicate(predicate: str, columns: Iterable[str], field: str) -> str:
    """The SQL to run for `predicate` (DuckDB's rendering of it), or a ConfigError naming `field` (e.g.
    "pools.web.predicate"), the predicate and why it was refused."""
    try:
        return render(predicate, {c.lower() for c in columns})
    except PredicateError as exc:
        raise ConfigError(f"{field}: refused {predicate!r}: {exc}; {HINT}; columns available: "
                          f"{sorted(columns)}") from None


def render(predicate: str, columns: set[str]) -> str:
    """Parse, check and render; the rendering is parsed and checked again, so what runs is what was checked."""
    from assay.curation.duckdb_locked import locked_connection

    with locked_connection() as con:  # it only parses and renders: the predicate is a parameter, never run
        tree = _parse(con, predicate)
        _check(tree, columns)
        sql = con.execute("SELECT json_deserialize_sql(?)", [json.dumps(tree)]).fetchone()[0]
        if not sql.startswith("SELECT "):
            raise PredicateError(f"DuckDB rendered it as {sql!r}, which is not one expression")
        sql = sql[len("SELECT "):]
        _check(_parse(con, sql), columns)
    return sql


def _parse(con, predicate: str) -> dict:
    """The expression tree of `SELECT <predicate>`; exactly one SELECT statement, or PredicateError."""
    import duckdb

    text = "SELECT " + predicate
    try:
        statements = con.extract_statements(text)
    except duckdb.Error as exc:
        raise PredicateError(f"DuckDB cannot parse it ({str(exc).splitlines()[0]})") from None
    if len(statements) != 1:
        raise PredicateError(f"it holds {len(statements)} SQL statements (a ';' ends one); a predicate is "
                             "one expression, never a statement such as COPY, ATTACH, INSTALL or LOAD")
    if statements[0].type != duckdb.StatementType.SELECT:
        raise PredicateError("it is not an expression")
    serialized = json.loads(con.execute("SELECT json_serialize_sql(?)", [text]).fetchone()[0])
    if serialized.get("error"):
        raise PredicateError(f"DuckDB cannot parse it ({serialized.get('error_message')})")
    statements = serialized["statements"]
    if len(statements) != 1:
        raise PredicateError("it is more than one statement")
    node = statements[0]["node"]
    clauses = ("where_clause", "having", "sample", "qualify")
    if (node.get("type") != "SELECT_NODE" or node.get("modifiers") or node.get("cte_map", {}).get("map")
            or node.get("from_table", {}).get("type") != "EMPTY" or any(node.get(c) is not None for c in clauses)
            or node.get("group_expressions") or node.get("group_sets") or len(node.get("select_list", [])) != 1
            or node.get("aggregate_handling") != "STANDARD_HANDLING"):
        raise PredicateError("it is not one expression (a FROM, WHERE, GROUP BY, ORDER BY, LIMIT, WITH or "
                             "several comma-separated expressions)")
    return serialized


def _expression(tree: dict) -> dict:
    return tree["statements"][0]["node"]["select_list"][0]


def _check(tree: dict, columns: set[str]) -> None:
    top = _expression(tree)
    if top.get("alias"):
        raise PredicateError(f"it is not one condition: DuckDB reads it as an expression named {top['alias']!r} "
                             "(statements such as INSTALL, LOAD or ATTACH are never allowed)")
    _walk(top, columns)


def _walk(value, columns: set[str]) -> None:
    """Every expression node below `value` (a dict with a "class") must be an allowed one."""
    if isinstance(value, list):
        for item in value:
            _walk(item, columns)
        return
    if not isinstance(value, dict):
        return
    kind = value.get("class")
    if kind is not None:
        _node(value, columns)
    for key, child in value.items():
        if key != "qualified_name":
            _walk(child, columns)


def _node(node: dict, columns: set[str]) -> None:
    kind, sub = node["class"], node.get("type")
    if kind == "SUBQUERY":
        raise PredicateError("it holds a subquery (SELECT inside a predicate is not allowed)")
    if kind not in CLASSES:
        raise PredicateError(f"it uses {kind.lower().replace('_', ' ')} expressions, which a predicate may not")
    if kind == "OPERATOR" and sub not in OPERATORS:
        raise PredicateError(f"it uses the operator {sub}, which a predicate may not")
    if kind == "COLUMN_REF":
        names = node.get("column_names") or []
        if not names or names[0].lower() not in columns:
            raise PredicateError(f"unknown column {'.'.join(names)!r}")
    if kind == "TYPE" and (node.get("catalog") or node.get("schema")):
        raise PredicateError(f"it casts to {node.get('type_name')!r} of another schema")
    if kind == "FUNCTION":
        name = str(node.get("function_name", "")).lower()
        if node.get("schema") or node.get("catalog"):
            raise PredicateError(f"it calls {node.get('schema') or node.get('catalog')}.{name}: schema-qualified "
                                 "functions are not allowed")
        if name not in FUNCTIONS:
            raise PredicateError(f"the function {name!r} is not allowed in a predicate (only pure scalar "
                                 "functions are; no table, file or aggregate function)")
        if (node.get("filter") is not None or (node.get("order_bys") or {}).get("orders") or node.get("distinct")
                or node.get("export_state") or any(a.get("name") for a in node.get("arguments", []))):
            raise PredicateError(f"{name} is called with FILTER, ORDER BY, DISTINCT or named arguments")
