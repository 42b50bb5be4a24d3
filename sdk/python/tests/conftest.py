"""Starts a real `starfire serve` (the binary in STARFIRE_BIN) on a loopback port with a
temporary SQLite database and the default model, bootstrapped with `starfire admin bootstrap`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

DEFAULT_MODEL_FILE = (
    Path.home() / ".cache/starfire/models/SmolLM2-135M-Instruct.Q4_1.gguf"
)
MODEL = "smollm2-135m-instruct"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server():
    binary = os.environ.get("STARFIRE_BIN")
    if not binary:
        pytest.fail(
            "STARFIRE_BIN must name the starfire binary (scripts/test-sdks sets it)"
        )
    home = tempfile.mkdtemp(prefix="starfire-sdk-test-")
    port = _free_port()
    env = {
        **os.environ,
        "STARFIRE_HOME": home,
        "STARFIRE_DATABASE_URL": f"sqlite://{home}/starfire.db",
        "STARFIRE_LISTEN": f"127.0.0.1:{port}",
        "STARFIRE_MODEL_PATH": os.environ.get(
            "STARFIRE_MODEL_PATH", str(DEFAULT_MODEL_FILE)
        ),
        "STARFIRE_LOG": "warn",
    }
    env.pop("STARFIRE_CONFIG", None)
    boot = subprocess.run(
        [
            binary,
            "admin",
            "bootstrap",
            "--email",
            "owner@example.com",
            "--tenant",
            "SDK tests",
        ],
        env={**env, "STARFIRE_BOOTSTRAP_PASSWORD": "sdk-test-password-1"},
        check=True,
        capture_output=True,
        text=True,
    )
    creds = json.loads(boot.stdout)
    log = open(Path(home) / "serve.log", "wb")
    proc = subprocess.Popen(
        [binary, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                "starfire serve exited: "
                + (Path(home) / "serve.log").read_text()[-2000:]
            )
        try:
            if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("starfire serve did not come up in 60 s")
        time.sleep(0.1)
    yield {"base_url": base_url, **creds}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
