"""Contract test: what Faro sends to Twilio, checked against Twilio's own OpenAPI spec.

Prism (pinned in ``tools/prism``, installed by ``make prism``) serves ``twilio_api_v2010.json`` in
mock mode with ``--errors``: a request that breaks the spec (a wrong type, a SID that misses its
pattern, no ``To``, no basic auth, a body that is not form-encoded) is answered 401/415/422
instead of the spec's 201. Faro's own ``TwilioGateway`` sends to it through the real ``twilio``
client, in every shape the dispatcher produces.

Where the spec comes from: ``FARO_TWILIO_SPEC`` if set, else
``../shared/reference/twilio/twilio_api_v2010.json`` beside the repository. Faro does not ship it
(it is Twilio's, under Twilio's licence). If it is missing the test FAILS when ``CI`` is set, when
``FARO_TWILIO_SPEC`` names it, or when ``../shared`` exists (the layout it belongs to, so a missing
file is a broken set-up, not an absent option); on any other machine it SKIPS and says why.
A missing Prism always fails: ``make prism`` installs it and ``make test`` runs that first.

What the spec cannot catch, so this test cannot either: ``To`` and ``From`` have format
``phone-number``, which Prism does not know and does not check; ``ValidityPeriod``'s range
(1-36000) is only in the description; unknown parameters are allowed (no
``additionalProperties: false``).
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from campaigns.messaging.twilio_gateway import OutboundRequest, SubmitResult, TwilioGateway
from tests.stack import ROOT, free_port, wait_for

# The team's shared folder sits next to the checkout; a CI checkout elsewhere on this machine
# finds it at its usual place.
SHARED = next(
    (p for p in (ROOT.parent / "shared", Path("/work/shared")) if p.exists()),
    ROOT.parent / "shared",
)
DEFAULT_SPEC = SHARED / "reference" / "twilio" / "twilio_api_v2010.json"
PRISM_BIN = ROOT / "tools" / "prism" / "node_modules" / ".bin" / "prism"

SID = "AC" + "0" * 32  # the spec's AccountSid pattern: ^AC[0-9a-fA-F]{32}$
TOKEN = "contract-test-token"
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
CALLBACK = "https://faro.example.org/webhooks/twilio/status?m=42"

pytestmark = [
    pytest.mark.slow,
    # twilio 9.13's asyncio client still builds aiohttp's deprecated BasicAuth and passes it as
    # the deprecated ``auth`` argument on every call.
    pytest.mark.filterwarnings("ignore:BasicAuth is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:The 'auth' parameter is deprecated:DeprecationWarning"),
]


def _spec() -> Path:
    override = os.environ.get("FARO_TWILIO_SPEC")
    spec = Path(override) if override else DEFAULT_SPEC
    if spec.is_file():
        return spec
    reason = f"Twilio's OpenAPI spec is not at {spec}"
    if override or os.environ.get("CI") or SHARED.is_dir():
        pytest.fail(f"{reason}; the contract test needs it here (see this module's docstring)")
    pytest.skip(f"{reason}; set FARO_TWILIO_SPEC to a copy of it to run the contract test")


@dataclass(frozen=True)
class Prism:
    url: str
    log: Path

    def mark(self) -> int:
        return self.log.stat().st_size

    def said_since(self, mark: int) -> str:
        """Prism's verdicts on the requests made since ``mark``."""
        with self.log.open("rb") as f:
            f.seek(mark)
            lines = f.read().decode(errors="replace").splitlines()
        return "\n".join(line for line in lines if "[VALIDATOR]" in line or "error" in line)


@pytest.fixture(scope="module")
def prism(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prism]:
    spec = _spec()
    if not os.access(PRISM_BIN, os.X_OK):
        pytest.fail(f"Prism is not installed at {PRISM_BIN}: run `make prism`")
    port = free_port()
    log = tmp_path_factory.mktemp("prism") / "prism.log"
    command = [str(PRISM_BIN), "mock", str(spec), "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, "--errors"], stdout=out, stderr=subprocess.STDOUT)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"Prism exited with {process.returncode}:\n{log.read_text()}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    try:
        wait_for(listening, timeout=60, what="Prism to load Twilio's spec and listen")
        yield Prism(url=f"http://127.0.0.1:{port}", log=log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _submit(url: str, outbound: OutboundRequest) -> SubmitResult:
    gateway = TwilioGateway(account_sid=SID, auth_token=TOKEN, api_url=url)
    try:
        return await gateway.submit(outbound)
    finally:
        await gateway.close()


# The shapes campaigns/messaging/dispatch.py builds: it always sets a status callback and a
# validity period (3600 s for replies, 14400 s for campaigns).
WHATSAPP_TEXT = OutboundRequest(
    message_id=42,
    to="+525512345678",
    channel="whatsapp",
    from_address="+14155238886",
    messaging_service_sid=None,
    body="Hola 👋 ¿cómo saco mi pasaporte? Kòmanse",
    content_sid=None,
    content_variables=None,
    status_callback=CALLBACK,
    validity_period=3600,
)
SMS_TEXT = replace(WHATSAPP_TEXT, channel="sms", to="+50937123456", from_address="+12025550143")
WHATSAPP_TEMPLATE = replace(
    WHATSAPP_TEXT,
    body=None,
    content_sid="HX" + "0123456789abcdef" * 2,
    content_variables={"1": "María", "2": "15 de enero"},
    validity_period=14400,
)
VIA_MESSAGING_SERVICE = replace(
    WHATSAPP_TEXT, from_address=None, messaging_service_sid="MG" + "a1b2c3d4" * 4
)
SHAPES = {
    "whatsapp-text": WHATSAPP_TEXT,
    "sms-text": SMS_TEXT,
    "whatsapp-template": WHATSAPP_TEMPLATE,
    "messaging-service": VIA_MESSAGING_SERVICE,
}


@pytest.mark.parametrize("outbound", SHAPES.values(), ids=SHAPES.keys())
def test_what_faro_sends_is_a_valid_twilio_request(prism: Prism, outbound: OutboundRequest) -> None:
    mark = prism.mark()
    result = asyncio.run(_submit(prism.url, outbound))
    assert result.ok, f"Twilio's spec refuses this request: {result}\n{prism.said_since(mark)}"
    # Prism answered with the spec's 201 example, a Message the gateway parsed.
    assert result.sid is not None and MESSAGE_SID.match(result.sid)
    assert (result.status, result.segments) == ("queued", 1)


def test_a_request_against_the_spec_is_refused_as_permanent(prism: Prism) -> None:
    # 34 characters starting "HX", but not hex: the spec's pattern is ^HX[0-9a-fA-F]{32}$.
    not_a_content_sid = replace(WHATSAPP_TEMPLATE, content_sid="HX" + "g" * 32)
    mark = prism.mark()
    result = asyncio.run(_submit(prism.url, not_a_content_sid))
    assert result == SubmitResult(ok=False, error_code=422, temporary=False)  # never retried
    assert 'ContentSid must match pattern "^HX[0-9a-fA-F]{32}$"' in prism.said_since(mark)


def test_prism_checks_types_against_the_spec(prism: Prism) -> None:
    async def send_a_word_as_validity_period() -> None:
        http = AsyncTwilioHttpClient()
        client = Client(SID, TOKEN, http_client=http)
        client.api.base_url = prism.url
        try:
            await client.messages.create_async(
                to="+525512345678", from_="+12025550143", body="Hola", validity_period="ten"
            )
        finally:
            await http.close()

    mark = prism.mark()
    with pytest.raises(TwilioRestException) as caught:
        asyncio.run(send_a_word_as_validity_period())
    assert caught.value.status == 422
    assert "ValidityPeriod must be integer" in prism.said_since(mark)
