"""Token-level facts about a train.py: which names its code reads, and a fingerprint of what it does.

Built on `tokenize` rather than `ast.parse`: the controller asks these while worker threads compile
candidates, and CPython 3.11's AST constructor is not safe to run from two threads at once.
"""

from __future__ import annotations

import functools
import hashlib
import io
import keyword
import tokenize

_SKIP = (tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER)


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    try:
        return list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return []


def _number(text: str) -> str:
    """0.020 and 0.02 are the same constant; 1_000 and 1000 too."""
    try:
        return repr(int(text, 0))
    except ValueError:
        try:
            return repr(float(text))
        except ValueError:
            return text


@functools.lru_cache(maxsize=128)
def code_fingerprint(source: str) -> str:
    """Hash of the token stream without comments, blank lines or spacing: equal for sources that run the same."""
    tokens = _tokens(source)
    if not tokens:
        return hashlib.sha256(source.encode()).hexdigest()
    parts = [_number(t.string) if t.type == tokenize.NUMBER else t.string for t in tokens if t.type not in _SKIP]
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


@functools.lru_cache(maxsize=128)
def read_names(source: str) -> frozenset[str]:
    """Names that occur in the code other than as the target of a top-level `NAME =` / `NAME: T =` assignment.

    Conservative: `obj.NAME` and keyword arguments count as reads, so a constant is only called unread
    when no code mentions it at all (a name read only through a string, `globals()["LR"]`, is missed).
    """
    tokens = [t for t in _tokens(source) if t.type not in (tokenize.COMMENT, tokenize.NL)]
    reads: set[str] = set()
    for i, t in enumerate(tokens):
        if t.type != tokenize.NAME or keyword.iskeyword(t.string):
            continue
        at_line_start = t.start[1] == 0 and (i == 0 or tokens[i - 1].type in (tokenize.NEWLINE, tokenize.DEDENT,
                                                                               tokenize.ENCODING))
        following = tokens[i + 1].string if i + 1 < len(tokens) else ""
        if at_line_start and following in ("=", ":"):
            continue  # the assignment of a module-level constant, not a use of it
        reads.add(t.string)
    return frozenset(reads)
