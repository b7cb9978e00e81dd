"""The AWS CLI as tests run it: the ``aws`` installed beside this interpreter (the dev extra
has ``awscli``), against one endpoint, with one access key and an empty home — no profile,
config or credentials file of the machine leaks in."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["AWS", "answer", "aws_cli"]

#: The CLI of this environment (a missing one is a broken install, not a reason to skip).
AWS = Path(sys.executable).with_name("aws")


def aws_cli(
    endpoint: str, access_key_id: str, secret_access_key: str, region: str, home: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``aws(*argv)`` runs ``aws ec2 ARGV --endpoint-url ENDPOINT --output json``."""
    environment = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "AWS_CONFIG_FILE": str(home / "config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "credentials"),
        "AWS_ACCESS_KEY_ID": access_key_id,
        "AWS_SECRET_ACCESS_KEY": secret_access_key,
        "AWS_DEFAULT_REGION": region,
    }

    def aws(*argv: str) -> subprocess.CompletedProcess[str]:
        command = [str(AWS), "ec2", *argv, "--endpoint-url", endpoint, "--output", "json"]
        return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)

    return aws


def answer(done: subprocess.CompletedProcess[str]) -> Any:
    """The JSON an ``aws`` call printed (it must have succeeded)."""
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout) if done.stdout.strip() else None
