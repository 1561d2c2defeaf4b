"""Removing secrets from text before it reaches a log line, an XCom value, an exception or an alert.

``redact(text)`` replaces what looks like a credential with ``<redacted>`` and keeps the rest, so a
message still names the cluster, the field and the problem. It recognises:

- bearer/basic tokens (``Authorization: Bearer ...``, ``Bearer eyJ...``), Slack tokens (``xox?-...``),
  JWTs;
- AWS access key ids (``AKIA...``/``ASIA...``) and ``aws_secret_access_key``-style values;
- Azure storage account keys (``AccountKey=...``), SAS signatures (``sig=...``), connection strings;
- PEM private key blocks (``-----BEGIN ... PRIVATE KEY-----`` through its end, or the rest of the text);
- ``key: value``, ``key=value`` and ``"key": "value"`` pairs whose key names a secret (``secret_key``,
  ``password``, ``token``, ``access_key``, ``api_key``, ``client_secret``, ``sas_token``, ...), in YAML,
  JSON, query strings and Python reprs;
- credentials inside URLs (``https://user:pass@host``).

It is a safety net, not the first line: the code avoids putting secrets into messages at all.
No Airflow imports here (the Airflow glue adds Airflow's own secrets masker on top).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

REDACTED = "<redacted>"
_KNOWN_SECRETS: set[str] = set()  # values registered at run time (header values, passwords from connections)
_SECRET_HOOKS: list[Callable[[str], None]] = []  # e.g. Airflow's mask_secret, added by the Airflow glue

# Names of keys whose values are secrets (compared case-insensitively, '-' and '_' alike).
_SECRET_NAMES = (
    r"(?:aws_)?secret(?:_access)?_key|secret|access_key(?:_id)?|(?:aws_)?session_token|password|passwd|pwd|"
    r"token|(?:x[-_])?api[-_]?key|apikey|client_secret|account_key|accountkey|storage_account_key|sas_token|"
    r"sas|sig|signature|private_key|private_key_id|credentials?|authorization|auth|bearer|"
    r"connection_string|connectionstring|service_account_json|key_json|kube_config|token_secret"
)
_PATTERNS: tuple[tuple[re.Pattern, str], ...] = (
    # PEM blocks: the whole block, or everything after a BEGIN whose END was cut off.
    (
        re.compile(
            r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----(?:.*?-----END [A-Z0-9 ]*PRIVATE KEY-----|.*\Z)", re.S
        ),
        REDACTED,
    ),
    # Authorization header values and bare bearer/basic tokens.
    (re.compile(r"(?i)\b(Bearer|Basic|Token)(\s+)[A-Za-z0-9._~+/=-]{4,}"), r"\1\2" + REDACTED),
    # key: value / key=value / "key": "value" / 'key': 'value' (YAML, JSON, query strings, reprs).
    (
        re.compile(
            r"""(?ix)
        (?P<key>["']?\b[\w.-]*?(?:"""
            + _SECRET_NAMES
            + r""")["']?)      # a key naming a secret
        (?P<sep>\s*[:=]\s*)                                              # : or =
        # not followed by a word that starts a message rather than a value:
        (?!(?:expected|missing|must|required|needed|only|give|set|not|unknown|none|null|its|the|a|an)\b)
        (?!(?:[\w.-]*[._-])?(?:"""
            + _SECRET_NAMES
            + r""")\b)            # a key named in a message
        (?P<value>"(?:[^"\\\n]|\\.)*"|'[^'\n]*'|[^\s,;&'"}\])]+)          # quoted or bare value
        """
        ),
        lambda m: m["key"] + m["sep"] + _quoted(m["value"]),
    ),
    # Slack tokens, JWTs, AWS access key ids.
    (re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{8,}"), REDACTED),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    (re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[A-Z0-9]{16}\b"), REDACTED),
    # Credentials inside URLs.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@"), r"\1" + REDACTED + "@"),
)


def _quoted(value: str) -> str:
    if value[:1] in "\"'" and value[-1:] == value[:1] and len(value) >= 2:
        return value[0] + REDACTED + value[0]
    return REDACTED


def register_secrets(values: Iterable[object]) -> None:
    """Remember secret values read at run time: ``redact`` removes them whatever their shape, and every
    hook (the Airflow glue adds its secrets masker, so task logs hide them too) is told about them."""
    for value in values:
        if not isinstance(value, str) or len(value) < 4:
            continue
        # The whole value, and its words (the token of "Bearer <token>" may be quoted alone).
        for part in {value, *(word for word in value.split() if len(word) >= 8)}:
            if part not in _KNOWN_SECRETS:
                _KNOWN_SECRETS.add(part)
                for hook in _SECRET_HOOKS:
                    hook(part)


def add_secret_hook(hook: Callable[[str], None]) -> None:
    """Call ``hook`` with every secret registered from now on (and those registered before)."""
    if hook not in _SECRET_HOOKS:
        _SECRET_HOOKS.append(hook)
        for value in _KNOWN_SECRETS:
            hook(value)


def redact(text: object) -> str:
    """``text`` (any object, as ``str()``) with every recognised secret replaced by ``<redacted>``."""
    result = text if isinstance(text, str) else str(text)
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        result = result.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        result = pattern.sub(replacement, result)
    return result


def secret_repr(obj, secret_fields: tuple[str, ...]) -> str:
    """A dataclass repr with ``<redacted>`` for the ``secret_fields`` that are set."""
    from dataclasses import fields

    parts = []
    for item in fields(obj):
        if not item.repr:
            continue
        value = getattr(obj, item.name)
        shown = REDACTED if item.name in secret_fields and value else repr(value)
        parts.append(f"{item.name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def describe_yaml_error(exc: BaseException) -> str:
    """Where a YAML file is broken and why, without the excerpt PyYAML quotes (the line may hold a secret)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "somewhere"
    problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or type(exc).__name__
    return f"{where}: {redact(problem)}"
