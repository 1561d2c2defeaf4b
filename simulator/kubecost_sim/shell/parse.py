"""The kubecost_sim shell's parser: simple commands with redirections, pipelines, ``&&``/``||`` lists."""

from __future__ import annotations

from dataclasses import dataclass

from .lex import ASSIGNMENT, UNSUPPORTED_WORDS, ShellSyntaxError, Token, Word, tokenize

# ------------------------------------------------------------------------------- sh: parsing


@dataclass
class Redirect:
    fd: int
    op: str  # ">", ">>", "<", ">&", "<&"
    target: Word


@dataclass
class SimpleCommand:
    assignments: list[tuple[str, Word]]
    words: list[Word]
    redirects: list[Redirect]


@dataclass
class Pipeline:
    commands: list[SimpleCommand]
    negated: bool = False


@dataclass
class AndOr:
    first: Pipeline
    rest: list[tuple[str, Pipeline]]


def parse(text: str) -> list[AndOr]:
    tokens = tokenize(text)
    position = 0

    def peek() -> Token | None:
        return tokens[position] if position < len(tokens) else None

    def is_op(token: Token | None, *values: str) -> bool:
        return token is not None and token.kind == "op" and token.value in values

    def take() -> Token:
        nonlocal position
        position += 1
        return tokens[position - 1]

    def parse_command() -> SimpleCommand:
        assignments, words, redirects = [], [], []
        while True:
            token = peek()
            if token is None or (token.kind == "op" and token.value in ("&&", "||", "|", ";")):
                break
            if is_op(token, "&"):
                raise ShellSyntaxError("background jobs (&) are not supported")
            if is_op(token, "(", ")", ";;"):
                raise ShellSyntaxError(f"unexpected {token.value!r} (subshells and case are not supported)")
            if token.kind == "io" or is_op(token, ">", ">>", "<", ">&", "<&"):
                fd = take().value if token.kind == "io" else None
                operator = take().value
                target = peek()
                if target is None or target.kind != "word":
                    raise ShellSyntaxError(f"missing target after {operator}")
                take()
                default_fd = 0 if operator in ("<", "<&") else 1
                redirects.append(Redirect(default_fd if fd is None else fd, operator, target.value))
                continue
            word = take().value
            literal = word.literal()
            if not words and word.parts and word.parts[0][0] == "text" and not word.parts[0][2]:
                match = ASSIGNMENT.match(word.parts[0][1])
                if match:
                    rest = Word([("text", word.parts[0][1][match.end() :], False), *word.parts[1:]])
                    assignments.append((match.group(1), rest))
                    continue
            if not words and word.is_unquoted() and literal in UNSUPPORTED_WORDS:
                raise ShellSyntaxError(f"'{literal}' is not supported by the kubecost_sim shell")
            words.append(word)
        if not (assignments or words or redirects):
            token = peek()
            raise ShellSyntaxError(f"unexpected {token.value if token else 'end of input'!r}")
        return SimpleCommand(assignments, words, redirects)

    def parse_pipeline() -> Pipeline:
        negated = False
        token = peek()
        if (
            token is not None
            and token.kind == "word"
            and token.value.is_unquoted()
            and token.value.literal() == "!"
        ):
            take()
            negated = True
        commands = [parse_command()]
        while is_op(peek(), "|"):
            take()
            commands.append(parse_command())
        return Pipeline(commands, negated)

    def parse_and_or() -> AndOr:
        first = parse_pipeline()
        rest = []
        while is_op(peek(), "&&", "||"):
            operator = take().value
            rest.append((operator, parse_pipeline()))
        return AndOr(first, rest)

    program = []
    while True:
        while is_op(peek(), ";"):
            take()
        if peek() is None:
            return program
        program.append(parse_and_or())
        token = peek()
        if token is not None and not is_op(token, ";"):
            raise ShellSyntaxError(f"unexpected {token.value!r}")
