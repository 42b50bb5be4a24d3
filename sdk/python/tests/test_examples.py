"""The examples run as written in the README, against the live server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def run(example: str, key: str, server) -> str:
    env = {
        **os.environ,
        "STARFIRE_API_KEY": key,
        "STARFIRE_BASE_URL": server["base_url"],
    }
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / example)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_quickstart_streams_an_answer(server):
    assert run("quickstart.py", server["api_key"], server).strip()


def test_keys_example_creates_lists_and_revokes(server):
    out = run("keys.py", server["admin_key"], server)
    assert "created key_" in out and "revoked key_" in out
    assert "models: ['smollm2-135m-instruct']" in out
    # The example samples (the default temperature), so its answer may end before 5 tokens:
    # the usage read back counts exactly the tokens the answer reported.
    answered = re.search(r"answer: .*? \((\d+) tokens\)\n", out, re.S)
    assert answered, out
    assert re.search(rf"usage: 1 requests, \d+ in, {answered.group(1)} out", out), out


def test_the_readme_shows_the_quickstart_as_written():
    readme = (EXAMPLES.parent.parent.parent / "README.md").read_text()
    assert (EXAMPLES / "quickstart.py").read_text() in readme
