"""The kubecost_sim shell's lexer: words with their quoting, operators, ``$...`` expansions left for later."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

# -------------------------------------------------------------------------------- sh: lexing


class ShellSyntaxError(Exception):
    pass


class ShellExit(Exception):
    def __init__(self, code: int):
        super().__init__(code)
        self.code = code


UNSUPPORTED_WORDS = {
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "for",
    "while",
    "until",
    "do",
    "done",
    "case",
    "esac",
    "function",
    "select",
    "{",
    "}",
}
_OPERATORS = ("&&", "||", ">>", ">&", "<&", ";;", "|", ";", "&", ">", "<", "(", ")")


NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)=")


@dataclass
class Word:
    # Each part: (kind, value, quoted); kind is "text", "param" (a ${...} body) or "subst" ($(...) body).
    parts: list[tuple[str, str, bool]] = field(default_factory=list)

    def add(self, kind: str, value: str, quoted: bool) -> None:
        """Append a part, joining runs of plain text (so ``NAME=`` is seen as one piece)."""
        if kind == "text" and self.parts and self.parts[-1][0] == "text" and self.parts[-1][2] == quoted:
            self.parts[-1] = ("text", self.parts[-1][1] + value, quoted)
        else:
            self.parts.append((kind, value, quoted))

    def literal(self) -> str | None:
        """The plain text of a word without expansions, or None."""
        if any(kind != "text" for kind, _, _ in self.parts):
            return None
        return "".join(value for _, value, _ in self.parts)

    def is_unquoted(self) -> bool:
        return all(not quoted for _, _, quoted in self.parts)


@dataclass
class Token:
    kind: str  # "word", "op", "io" (a redirection's fd number)
    value: object


def _find_closing_paren(text: str, start: int) -> int:
    """Index of the ``)`` closing a ``$(`` whose body starts at ``start``."""
    depth, i = 1, start
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                break
            i = end + 1
            continue
        if char == '"':
            i += 1
            while i < len(text) and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ShellSyntaxError("unterminated $(")


def _read_dollar(text: str, i: int, quoted: bool) -> tuple[tuple[str, str, bool], int]:
    """Parse the expansion starting at ``text[i] == '$'``; return (part, next index)."""
    nxt = text[i + 1] if i + 1 < len(text) else ""
    if nxt == "(":
        if text.startswith("((", i + 1):
            raise ShellSyntaxError("arithmetic $((...)) is not supported")
        end = _find_closing_paren(text, i + 2)
        return ("subst", text[i + 2 : end], quoted), end + 1
    if nxt == "{":
        end = text.find("}", i + 2)
        if end < 0:
            raise ShellSyntaxError("missing }")
        return ("param", text[i + 2 : end], quoted), end + 1
    if nxt and nxt in "?$#@*0123456789":
        return ("param", nxt, quoted), i + 2
    match = NAME.match(text, i + 1)
    if match:
        return ("param", match.group(), quoted), match.end()
    return ("text", "$", quoted), i + 1


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    word: Word | None = None
    i = 0

    def finish_word():
        nonlocal word
        if word is not None:
            tokens.append(Token("word", word))
            word = None

    while i < len(text):
        char = text[i]
        if char in " \t":
            finish_word()
            i += 1
        elif char == "\n":
            finish_word()
            tokens.append(Token("op", ";"))
            i += 1
        elif char == "#" and word is None:
            end = text.find("\n", i)
            i = len(text) if end < 0 else end
        elif char == "\\":
            if i + 1 < len(text) and text[i + 1] == "\n":  # line continuation
                i += 2
                continue
            word = word or Word()
            word.add("text", text[i + 1 : i + 2], True)
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellSyntaxError("unterminated quoted string")
            word = word or Word()
            word.add("text", text[i + 1 : end], True)
            i = end + 1
        elif char == '"':
            word = word or Word()
            word.add("text", "", True)  # so that "" alone is still an (empty) argument
            i += 1
            while True:
                if i >= len(text):
                    raise ShellSyntaxError("unterminated quoted string")
                char = text[i]
                if char == '"':
                    i += 1
                    break
                if char == "\\" and i + 1 < len(text) and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        word.add("text", text[i + 1], True)
                    i += 2
                elif char == "$":
                    part, i = _read_dollar(text, i, True)
                    word.add(*part)
                elif char == "`":
                    raise ShellSyntaxError("backquote command substitution is not supported; use $(...)")
                else:
                    word.add("text", char, True)
                    i += 1
        elif char == "$":
            word = word or Word()
            part, i = _read_dollar(text, i, False)
            word.add(*part)
        elif char == "`":
            raise ShellSyntaxError("backquote command substitution is not supported; use $(...)")
        else:
            operator = next((op for op in _OPERATORS if text.startswith(op, i)), None)
            if operator is None:
                word = word or Word()
                word.add("text", char, False)
                i += 1
                continue
            if (
                operator[0] in "<>"
                and word is not None
                and word.is_unquoted()
                and ((word.literal() or "").isdigit())
            ):
                tokens.append(Token("io", int(word.literal())))  # "2>" : fd number, not a word
                word = None
            else:
                finish_word()
            tokens.append(Token("op", operator))
            i += len(operator)
    finish_word()
    return tokens
