"""JWT authentication at the edge: every rejection with a real token, asymmetric keys, and start-up refusals."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from tests.gateway.conftest import (
    MODEL,
    SECRET,
    FakeOrchestrator,
    Gateway,
    GatewayFactory,
    gateway_settings,
    mint_token,
)
from tests.gateway.test_chat_errors import assert_openai_error

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
CHAT = {"model": MODEL, "messages": MESSAGES}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made_token(header: dict[str, Any], claims: dict[str, Any], signer: bytes | None) -> str:
    """A token built without PyJWT's guard rails: ``alg: none``, or HMAC keyed with a public key."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(signer, signing_input.encode(), hashlib.sha256).digest() if signer else b""
    return f"{signing_input}.{_b64(signature)}"


def claims(subject: str = "tester", ttl_s: int = 3600, **extra: Any) -> dict[str, Any]:
    return {"sub": subject, "exp": int(time.time()) + ttl_s, **extra}


def public_pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


async def status_of(gateway: Gateway, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {token}"}) as client:
        return await client.post("/v1/chat/completions", json=CHAT)


def assert_401(response: httpx.Response, reason: str) -> None:
    error = assert_openai_error(response, 401, type="authentication_error", code="invalid_api_key")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert reason.lower() in error["message"].lower(), error["message"]


@pytest.mark.parametrize(
    ("case", "token", "reason"),
    [
        ("alg none", hand_made_token({"alg": "none", "typ": "JWT"}, claims(), None), "alg"),
        ("alg None", hand_made_token({"alg": "None", "typ": "JWT"}, claims(), None), "alg"),
        ("other HMAC alg", jwt.encode(claims(), SECRET, algorithm="HS384"), "alg"),
        # Minted at collection: a day ahead still lies ahead however long the suite runs.
        ("nbf in the future", mint_token(nbf=int(time.time()) + 86_400), "not yet valid"),
        ("no exp", jwt.encode({"sub": "tester"}, SECRET, algorithm="HS256"), "exp"),
        ("empty sub", mint_token(subject=""), "sub"),
        ("numeric sub", jwt.encode(claims(subject=42), SECRET, algorithm="HS256"), "Subject"),  # type: ignore[arg-type]
        ("aud without JWT_AUDIENCE", mint_token(aud="someone-else"), "audience"),
        ("tampered payload", mint_token()[:-4] + "AAAA", "invalid token"),
    ],
)
async def test_rejected_tokens(gateway: Gateway, fake: FakeOrchestrator, case: str, token: str, reason: str) -> None:
    assert_401(await status_of(gateway, token), reason)
    assert fake.requests == []


async def test_every_v1_path_needs_a_token_and_health_does_not(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        for method, path in (("GET", "/v1/nothing-here"), ("DELETE", "/v1/models"), ("POST", "/v1/embeddings")):
            assert_401(await client.request(method, path), "missing bearer token")
        for path in ("/health", "/health/ready", "/openapi.json"):
            assert (await client.get(path)).status_code == 200
        authorized = await client.get("/v1/nothing-here", headers={"Authorization": f"Bearer {mint_token()}"})
    assert_openai_error(authorized, 404)


async def test_token_is_checked_before_the_body_is_read(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post(
            "/v1/chat/completions", content=b'{"model": ', headers={"Content-Type": "application/json"}
        )
    assert_401(response, "missing bearer token")


async def test_audience_and_issuer(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(jwt_audience="agentmesh-api", jwt_issuer="https://idp.example")
    good: dict[str, Any] = {"aud": "agentmesh-api", "iss": "https://idp.example"}
    assert (await status_of(gateway, mint_token(**good))).status_code == 200
    assert_401(await status_of(gateway, mint_token(**{**good, "aud": "other-api"})), "audience")
    assert_401(await status_of(gateway, mint_token(**{**good, "iss": "https://evil.example"})), "issuer")
    assert_401(await status_of(gateway, mint_token(iss=good["iss"])), "aud")
    assert_401(await status_of(gateway, mint_token(aud=good["aud"])), "iss")


async def test_rs256_tokens_stream_and_hs_confusion_fails(
    start_gateway: GatewayFactory, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = public_pem(rsa_key)
    gateway = await start_gateway(jwt_algorithm="RS256", jwt_public_key=pem)
    async with gateway.openai(jwt.encode(claims("idp-user"), rsa_key, algorithm="RS256")) as client:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "Hello, world"
    # The classic confusion attack: HMAC "signed" with the public key the server verifies RS256 with.
    confused = hand_made_token({"alg": "HS256", "typ": "JWT"}, claims(), pem.encode())
    assert_401(await status_of(gateway, confused), "alg")
    assert_401(await status_of(gateway, mint_token()), "alg")
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_401(await status_of(gateway, jwt.encode(claims(), other_key, algorithm="RS256")), "Signature")


async def test_es256_public_key_file(
    start_gateway: GatewayFactory, ec_key: ec.EllipticCurvePrivateKey, tmp_path: Path
) -> None:
    key_file = tmp_path / "issuer.pem"
    key_file.write_text(public_pem(ec_key))
    gateway = await start_gateway(jwt_algorithm="ES256", jwt_public_key_file=key_file)
    assert (await status_of(gateway, jwt.encode(claims(), ec_key, algorithm="ES256"))).status_code == 200
    p384 = ec.generate_private_key(ec.SECP384R1())
    assert_401(await status_of(gateway, jwt.encode(claims(), p384, algorithm="ES384")), "alg")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"jwt_secret_key": "too-short"}, "at least 32 characters (got 9)"),
        ({"jwt_secret_key": ""}, "at least 32 characters (got 0)"),
        ({"jwt_algorithm": "RS256"}, "needs one of JWT_PUBLIC_KEY or JWT_PUBLIC_KEY_FILE"),
        ({"jwt_algorithm": "RS256", "jwt_public_key": "not a key"}, "is not usable with RS256"),
        ({"jwt_public_key": "-----BEGIN PUBLIC KEY-----"}, "need an RS/PS/ES JWT_ALGORITHM"),
        ({"jwt_algorithm": "none"}, "jwt_algorithm"),
        ({"jwt_algorithm": "RS256", "jwt_public_key_file": "/nonexistent.pem"}, "not a readable file"),
    ],
)
def test_start_up_refuses_unusable_keys(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        gateway_settings("127.0.0.1:1", **overrides)
    assert message in str(caught.value)


def test_start_up_refuses_a_key_of_the_wrong_type(rsa_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValidationError, match="is not usable with ES256"):
        gateway_settings("127.0.0.1:1", jwt_algorithm="ES256", jwt_public_key=public_pem(rsa_key))
    p384 = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(ValidationError, match="curve"):
        gateway_settings("127.0.0.1:1", jwt_algorithm="ES256", jwt_public_key=public_pem(p384))
    private_pem = rsa_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    with pytest.raises(ValidationError, match="holds a private key"):
        gateway_settings("127.0.0.1:1", jwt_algorithm="RS256", jwt_public_key=private_pem)


def signed(payload: dict[str, Any]) -> str:
    return jwt.encode(payload, SECRET, algorithm="HS256")


def raw_signed(payload_json: str) -> str:
    """A correctly signed token whose payload is exactly this JSON text (PyJWT would re-encode numbers)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(payload_json.encode())}"
    return f"{signing_input}.{_b64(hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest())}"


DAY = 86400


@pytest.mark.parametrize(
    ("case", "token", "reason"),
    [
        ("exp 10^400", raw_signed('{"sub": "tester", "exp": 1' + "0" * 400 + "}"), "bad_claim"),
        ("exp 1e400", raw_signed('{"sub": "tester", "exp": 1e400}'), "bad_claim"),
        ("numeric-string exp", signed({"sub": "tester", "exp": str(int(time.time()) + 3600)}), "bad_claim"),
        ("exp a year away", signed(claims(ttl_s=365 * DAY)), "lifetime_too_long"),
        (
            "exp 31 days after iat",
            signed(claims(ttl_s=29 * DAY, iat=int(time.time()) - 2 * DAY)),
            "lifetime_too_long",
        ),
        ("numeric-string iat", signed(claims(iat=str(int(time.time())))), "bad_claim"),
        ("boolean nbf", signed(claims(nbf=True)), "bad_claim"),
        ("sub of 10,000 characters", mint_token(subject="a" * 10_000), "bad_subject"),
        ("sub with a newline", mint_token(subject="alice\nlevel=admin"), "bad_subject"),
        ("sub with an escape", mint_token(subject="alice\x1b[2J"), "bad_subject"),
        ("nested JSON bomb", raw_signed('{"sub": "tester", "x": ' + "[" * 3000 + "]" * 3000 + "}"), "malformed"),
    ],
)
async def test_tokens_refused_by_our_own_checks(
    gateway: Gateway, fake: FakeOrchestrator, case: str, token: str, reason: str
) -> None:
    response = await status_of(gateway, token)
    assert_401(response, "invalid token")
    assert f"(reason: {reason})" in response.json()["error"]["message"]
    assert fake.requests == []


async def test_a_month_long_token_is_accepted_and_the_cap_is_a_setting(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway()
    month = signed(claims(ttl_s=29 * DAY, iat=int(time.time())))
    assert (await status_of(gateway, month)).status_code == 200
    strict = await start_gateway(jwt_max_lifetime=3600)
    assert_401(await status_of(strict, month), "lifetime_too_long")
    assert (await status_of(strict, mint_token(ttl_s=1800))).status_code == 200


async def test_the_library_s_words_never_reach_the_caller(gateway: Gateway) -> None:
    bomb = raw_signed('{"sub": "tester", "x": ' + "[" * 3000 + "]" * 3000 + "}")
    tampered = mint_token()[:-4] + "AAAA"
    for token in (bomb, tampered, "not.a.jwt", signed(claims(iat="yesterday"))):
        message = (await status_of(gateway, token)).json()["error"]["message"]
        for library_text in ("recursion", "Invalid payload", "Signature verification", "Issued At", "padding"):
            assert library_text not in message, message


async def test_two_authorization_headers_are_refused(gateway: Gateway, fake: FakeOrchestrator) -> None:
    headers = [("Authorization", f"Bearer {mint_token()}"), ("Authorization", "Bearer forged")]
    async with httpx.AsyncClient(base_url=gateway.url) as client:
        response = await client.post("/v1/chat/completions", json=CHAT, headers=httpx.Headers(headers))
        reversed_order = await client.post("/v1/chat/completions", json=CHAT, headers=httpx.Headers(headers[::-1]))
    for answer in (response, reversed_order):
        assert_401(answer, "one Authorization header")
    assert fake.requests == []


async def test_clock_skew_within_the_leeway_is_tolerated(start_gateway: GatewayFactory) -> None:
    gateway = await start_gateway(jwt_leeway=30)
    now = int(time.time())
    skewed = signed({"sub": "tester", "iat": now + 20, "nbf": now + 20, "exp": now + 3600})
    assert (await status_of(gateway, skewed)).status_code == 200
    just_expired = signed({"sub": "tester", "exp": now - 20})
    assert (await status_of(gateway, just_expired)).status_code == 200
    strict = await start_gateway(jwt_leeway=0)
    assert_401(await status_of(strict, skewed), "not yet valid")
    assert_401(await status_of(strict, just_expired), "expired")


async def test_rejection_details_are_logged(gateway: Gateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="gateway.edge.auth")
    await status_of(gateway, mint_token()[:-4] + "AAAA")
    records = [r for r in caplog.records if r.name == "gateway.edge.auth" and r.getMessage() == "rejected token"]
    assert records and records[-1].reason == "bad_signature"
    assert "Signature verification failed" in records[-1].detail
