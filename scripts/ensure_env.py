"""Makes sure `.env` has a JWT_SECRET_KEY: generates one when absent or empty, never replaces an existing one.

Stdlib only, so it runs before the virtualenv exists. Prints what it did, never the secret.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

KEY = "JWT_SECRET_KEY"
MIN_SECRET_LENGTH = 32
_ASSIGNMENT = re.compile(rf"^\s*(?:export\s+)?{KEY}\s*=\s*(.*?)\s*$")


def _value(raw: str) -> str:
    """The value of a dotenv assignment, without quotes or a trailing comment."""
    if raw[:1] in {'"', "'"} and raw.endswith(raw[0]) and len(raw) >= 2:
        return raw[1:-1]
    return raw.split(" #", 1)[0].strip()


def ensure_secret(path: Path) -> str:
    """Returns a one-line description of what was done to ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    for index, line in enumerate(lines):
        match = _ASSIGNMENT.match(line)
        if not match:
            continue
        current = _value(match.group(1))
        if current:
            if len(current) < MIN_SECRET_LENGTH:
                return f"{path}: {KEY} kept, but it has {len(current)} characters and the gateway needs at least 32"
            return f"{path}: {KEY} already set, left unchanged"
        lines[index] = f"{KEY}={secrets.token_urlsafe(48)}"
        _write(path, lines)
        return f"{path}: {KEY} was empty, generated a new one"
    existed = path.exists()
    lines.append(f"{KEY}={secrets.token_urlsafe(48)}")
    _write(path, lines)
    return f"{path}: {'added' if existed else 'created with'} a generated {KEY}"


def _write(path: Path, lines: list[str]) -> None:
    # The file holds a secret: readable by its owner only, also when it is created here.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ensure .env has a JWT_SECRET_KEY (never overwrites one).")
    parser.add_argument("--path", type=Path, default=Path(".env"), help="the dotenv file (default: ./.env)")
    args = parser.parse_args(argv)
    print(ensure_secret(args.path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
