"""Starts a real `starfire serve` (the binary in STARFIRE_BIN) on a loopback port with a
temporary SQLite database and the default model, bootstrapped with `starfire admin bootstrap`."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

DEFAULT_MODEL_FILE = (
    Path.home() / ".cache/starfire/models/SmolLM2-135M-Instruct.Q4_1.gguf"
)
MODEL = "smollm2-135m-instruct"


class FakeStripe:
    """The two Stripe calls a top-up makes (a customer, a Checkout Session), answered like
    Stripe: the same Idempotency-Key gets the first answer again."""

    SECRET = "sk_test_sdk_0123456789"

    def __init__(self) -> None:
        self.sessions: list[dict] = []
        self.answers: dict[str, bytes] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                ok = self.headers.get("authorization") == f"Bearer {fake.SECRET}"
                key = self.headers.get("idempotency-key") or ""
                body = fake.answers.get(key) if ok else None
                if ok and body is None:
                    body = json.dumps(fake.create(self.path, form)).encode()
                    fake.answers[key] = body
                self.send_response(200 if ok else 401)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body or b"{}")))
                self.end_headers()
                self.wfile.write(body or b"{}")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def create(self, path: str, form: dict) -> dict:
        now = int(time.time())
        if path == "/v1/customers":
            return {"id": "cus_sdk", "object": "customer", "created": now, "livemode": False}
        session_id = f"cs_test_sdk_{len(self.sessions) + 1}"
        self.sessions.append(form)
        return {
            "id": session_id,
            "object": "checkout.session",
            "amount_total": int(form["line_items[0][price_data][unit_amount]"]),
            "automatic_tax": {"enabled": False},
            "created": now,
            "currency": "usd",
            "custom_fields": [],
            "custom_text": {},
            "expires_at": now + 86400,
            "livemode": False,
            "mode": "payment",
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "shipping_options": [],
            "status": "open",
            "url": f"https://checkout.stripe.test/{session_id}",
        }


@pytest.fixture(scope="session")
def fake_stripe():
    fake = FakeStripe()
    yield fake
    fake.httpd.shutdown()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def server(fake_stripe):
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
        "STARFIRE_STRIPE_SECRET_KEY": FakeStripe.SECRET,
        "STARFIRE_STRIPE_API_BASE": fake_stripe.url,
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
