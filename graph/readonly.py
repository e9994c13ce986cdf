"""Statement check for the read-only Cypher path (the first of two locks; read transactions are the second).

Why both: a keyword check alone misses procedures that write; a read transaction alone depends on
the server honouring access modes. The check strips string literals, comments and backquoted names
first, so ``RETURN 'CREATE'`` passes and ``/* */ CREATE`` does not.
"""

from __future__ import annotations

import re

from qa_system.errors import ReadOnlyViolationError

MAX_QUERY_CHARS = 20_000

# Clauses that write or change schema/state, in Neo4j and Kùzu/LadybugDB dialects.
_WRITE_KEYWORDS = (
    "CREATE", "MERGE", "SET", "DELETE", "DETACH", "REMOVE", "DROP", "ALTER", "COPY", "LOAD",
    "INSTALL", "ATTACH", "DETACH", "IMPORT", "EXPORT", "CHECKPOINT", "BEGIN", "COMMIT", "ROLLBACK",
    "FOREACH", "GRANT", "REVOKE", "DENY", "TERMINATE",
)
# Procedures a reader may CALL (exact names, case-insensitive). Everything else is refused.
_READ_PROCEDURES = frozenset(
    {
        "db.labels", "db.relationshiptypes", "db.propertykeys", "db.schema.visualization",
        "db.schema.nodetypeproperties", "db.schema.reltypeproperties", "show_tables", "table_info",
        "show_connection", "current_setting", "db_version", "show_functions",
    }
)

_LITERALS = re.compile(
    r"""'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|`[^`]*`|//[^\n]*|/\*.*?\*/""",
    re.DOTALL,
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
_CALL = re.compile(r"\bCALL\s+([A-Za-z_][A-Za-z_0-9.]*)\s*(\(|\{)?", re.IGNORECASE)


def _strip_literals(query: str) -> str:
    return _LITERALS.sub(" ", query)


def check_read_only(query: str) -> str:
    """Return the query (stripped) when it is a single read-only statement; raise otherwise."""

    if not isinstance(query, str) or not query.strip():
        raise ReadOnlyViolationError("empty query")
    if len(query) > MAX_QUERY_CHARS:
        raise ReadOnlyViolationError(f"query is {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
    if "\x00" in query:
        raise ReadOnlyViolationError("query contains a NUL byte")
    bare = _strip_literals(query)
    statement = bare.strip().rstrip(";").strip()
    if ";" in statement:
        raise ReadOnlyViolationError("only one statement is allowed (found ';' between statements)")
    if not statement:
        raise ReadOnlyViolationError("query holds only comments")
    words = {w.upper() for w in _WORD.findall(statement)}
    writes = sorted(words.intersection(_WRITE_KEYWORDS))
    if writes:
        raise ReadOnlyViolationError(f"read-only workbench: {', '.join(writes)} is not allowed")
    for match in _CALL.finditer(statement):
        name = match.group(1).lower()
        if match.group(2) == "{" or name not in _READ_PROCEDURES:
            raise ReadOnlyViolationError(
                f"read-only workbench: CALL {match.group(1)} is not allowed (only schema procedures such as db.labels)"
            )
    if not words.intersection({"MATCH", "RETURN", "WITH", "UNWIND", "CALL", "OPTIONAL"}):
        raise ReadOnlyViolationError("not a read query (expected MATCH ... RETURN ...)")
    return query.strip().rstrip(";").strip()
