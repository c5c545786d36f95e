"""Keys and signatures for the payment gateways' protocols.

Both gateways authenticate with RSA (SHA256withRSA, PKCS#1 v1.5) in both directions: we sign
requests with our private key, they sign answers with theirs. WeChat Pay v3 also encrypts the
body of its notifications with the merchant's APIv3 key (AEAD_AES_256_GCM). The functions here
are pure so that the clients in this package and the sandbox gateways share one implementation:
a mismatch between what we sign and what a gateway verifies shows up in the tests, not in
production.

Everything is imported from here. Alipay's RSA2 canonical string is defined here; keys,
certificates and SHA256withRSA in `peers.rsa_keys`; WeChat Pay v3's request and answer
signatures and its encryption in `peers.wechatpay_signing`.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import rsa

from peers.rsa_keys import (
    SANDBOX_KEY_FILES,
    SANDBOX_WECHAT_CERT_FILE,
    ensure_keypair,
    ensure_sandbox_keys,
    ensure_self_signed_certificate,
    load_private_key,
    load_public_key,
    new_self_signed_certificate,
    rsa_sign,
    rsa_verify,
)
from peers.wechatpay_signing import (
    WECHATPAY_AUTH_SCHEMA,
    DecryptionFailed,
    WechatpayAuthorization,
    new_nonce,
    parse_wechatpay_authorization,
    wechatpay_authorization,
    wechatpay_decrypt,
    wechatpay_decrypt_sensitive,
    wechatpay_encrypt,
    wechatpay_encrypt_sensitive,
    wechatpay_request_message,
    wechatpay_response_message,
    wechatpay_sign_response,
    wechatpay_verify_response,
)

__all__ = [
    "SANDBOX_KEY_FILES",
    "SANDBOX_WECHAT_CERT_FILE",
    "WECHATPAY_AUTH_SCHEMA",
    "DecryptionFailed",
    "WechatpayAuthorization",
    "alipay_sign",
    "alipay_sign_content",
    "alipay_verify",
    "ensure_keypair",
    "ensure_sandbox_keys",
    "ensure_self_signed_certificate",
    "load_private_key",
    "load_public_key",
    "new_nonce",
    "new_self_signed_certificate",
    "parse_wechatpay_authorization",
    "rsa_sign",
    "rsa_verify",
    "wechatpay_authorization",
    "wechatpay_decrypt",
    "wechatpay_decrypt_sensitive",
    "wechatpay_encrypt",
    "wechatpay_encrypt_sensitive",
    "wechatpay_request_message",
    "wechatpay_response_message",
    "wechatpay_sign_response",
    "wechatpay_verify_response",
]


# --- Alipay (RSA2) ----------------------------------------------------------------------------


def alipay_sign_content(params: Mapping[str, str], *, exclude: frozenset[str] = frozenset()) -> str:
    """Alipay's canonical string: `k=v` pairs sorted by key, joined by `&`.

    `sign` and empty values are always left out; callers verifying asynchronous notifications
    also exclude `sign_type` (Alipay's rule differs there from requests).
    """
    skip = exclude | {"sign"}
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in skip and params[k])


def alipay_sign(private_key: rsa.RSAPrivateKey, params: Mapping[str, str]) -> str:
    return rsa_sign(private_key, alipay_sign_content(params).encode("utf-8"))


def alipay_verify(public_key: rsa.RSAPublicKey, params: Mapping[str, str], signature: str) -> bool:
    return rsa_verify(public_key, alipay_sign_content(params).encode("utf-8"), signature)
