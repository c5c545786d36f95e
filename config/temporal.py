"""One way to reach Temporal, for the API, the worker and every `refundctl` command.

Where and how to connect comes from Temporal's own environment configuration
(`temporalio.envconfig`), exactly as the `temporal` CLI reads it: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH (each also as _DATA),
TEMPORAL_TLS_SERVER_NAME, TEMPORAL_GRPC_META_*, or a profile of a temporal.toml
(TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE).
An address or namespace given in code or as TEMPORAL_ADDRESS/TEMPORAL_NAMESPACE wins over
the profile's; with nothing set at all it is the local dev server.

What travels is encrypted (`config.payload_encryption`) and, when tracing is on, carries the
trace along (`TracingInterceptor`). A connection that cannot be made is one line,
`TemporalUnavailable`, which `refundctl` prints before exiting non-zero: the address, the
namespace and what went wrong, never a stack trace."""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cryptography import x509
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfigProfile
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from config.payload_encryption import PayloadEncryption, PayloadKeyError, parse_keys
from config.problems import CannotStart
from config.settings import Settings

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

DEFAULT_ADDRESS = "127.0.0.1:7233"
DEFAULT_NAMESPACE = "default"


class TemporalUnavailable(CannotStart):
    """Temporal could not be reached, or refused us; the message is one line saying which."""


def connection_options(
    settings: Settings, *, environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`Client.connect` keyword arguments from the environment configuration (`environ`, or
    this process's environment) with the settings' address and namespace on top."""
    # An empty TEMPORAL_* variable means "not set" here, as it does for our own settings:
    # it must not blank out what the profile says.
    given = os.environ if environ is None else environ
    env = {k: v for k, v in given.items() if v or not k.startswith("TEMPORAL_")}
    try:
        profile = ClientConfigProfile.load(override_env_vars=env)
    except Exception as err:  # a bad temporal.toml, a TLS file that is not there...
        raise TemporalUnavailable(f"Temporal client configuration: {_one_line(err)}") from err
    options: dict[str, Any] = dict(profile.to_client_connect_config())
    options["target_host"] = (
        _given(settings, "temporal_address")
        or options.get("target_host")
        or settings.temporal_address
        or DEFAULT_ADDRESS
    )
    options["namespace"] = (
        _given(settings, "temporal_namespace")
        or options.get("namespace")
        or settings.temporal_namespace
        or DEFAULT_NAMESPACE
    )
    return options


def _given(settings: Settings, name: str) -> str:
    """A setting someone gave (in code or the environment), not its default."""
    value: str = getattr(settings, name)
    return value if name in settings.model_fields_set else ""


def payload_codec(settings: Settings) -> PayloadEncryption | None:
    """The payload codec of PAYLOAD_ENCRYPTION_KEYS; None when encryption is off."""
    try:
        keys = parse_keys(settings.payload_key_text())
    except OSError as err:
        raise PayloadKeyError(f"PAYLOAD_ENCRYPTION_KEYS_FILE: {err}") from err
    return PayloadEncryption(keys) if keys else None


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic models as JSON (workflows, activities and signals take our models as they
    are), encrypted by the payload codec."""
    codec = payload_codec(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)


async def connect(
    settings: Settings,
    *,
    runtime: Runtime | None = None,
    tracer_provider: TracerProvider | None = None,
    environ: Mapping[str, str] | None = None,
) -> Client:
    """A client for `settings`' namespace, checked: the namespace must answer, so a wrong
    address, certificate, API key or namespace shows here, not at the first refund."""
    options = connection_options(settings, environ=environ)
    interceptors: list[Interceptor] = []
    if tracer_provider is not None:
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptors.append(TracingInterceptor(tracer_provider.get_tracer("kami-refunds")))
    target, namespace = options["target_host"], options["namespace"]
    _check_client_certificate(options.get("tls"), target=target, namespace=namespace)
    try:
        client = await Client.connect(
            **options,
            data_converter=data_converter(settings),
            interceptors=interceptors,
            runtime=runtime,
        )
        await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=namespace)
        )
    except Exception as err:
        raise TemporalUnavailable(explain_failure(err, target=target, namespace=namespace)) from err
    return client


def explain_failure(err: BaseException, *, target: str, namespace: str) -> str:
    """What went wrong connecting, in one line an operator can act on."""
    where = f"Temporal at {target} (namespace {namespace})"
    detail = _one_line(err)
    if isinstance(err, RPCError):
        if err.status is RPCStatusCode.UNAUTHENTICATED:
            return f"{where} refused our credentials (TEMPORAL_API_KEY or client certificate): {detail}"
        if err.status is RPCStatusCode.PERMISSION_DENIED:
            return f"{where} denied access to the namespace: {detail}"
        if err.status is RPCStatusCode.NOT_FOUND:
            return f"{where}: the namespace does not exist: {detail}"
    lowered = detail.lower()
    if "expired" in lowered:
        return f"{where}: a TLS certificate has expired: {detail}"
    if "certificate" in lowered or "tls" in lowered or "handshake" in lowered:
        return f"{where}: the TLS handshake failed: {detail}"
    if "401" in lowered or "unauthenticated" in lowered:
        return f"{where} refused our credentials (TEMPORAL_API_KEY): {detail}"
    if "400 bad request" in lowered:
        return (
            f"{where} refused the connection (HTTP 400: a TLS front that did not accept our "
            f"client certificate?): {detail}"
        )
    return f"cannot reach {where}: {detail}"


def _check_client_certificate(tls: object, *, target: str, namespace: str) -> None:
    """An expired client certificate is said plainly before a server words it its own way."""
    if not isinstance(tls, TLSConfig) or not tls.client_cert:
        return
    try:
        cert = x509.load_pem_x509_certificate(tls.client_cert)
    except ValueError as err:
        raise TemporalUnavailable(
            f"Temporal at {target} (namespace {namespace}): the client certificate "
            f"(TEMPORAL_TLS_CLIENT_CERT_*) is not a PEM certificate: {_one_line(err)}"
        ) from err
    now = datetime.now(UTC)
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise TemporalUnavailable(
            f"Temporal at {target} (namespace {namespace}): our client certificate "
            f"(TEMPORAL_TLS_CLIENT_CERT_*, {cert.subject.rfc4514_string()}) is valid from "
            f"{cert.not_valid_before_utc.isoformat()} to {cert.not_valid_after_utc.isoformat()}: "
            + ("it has expired" if now > cert.not_valid_after_utc else "not yet valid")
        )


def _one_line(err: BaseException) -> str:
    text = re.sub(r"\s+", " ", str(err) or type(err).__name__).strip()
    return text if len(text) <= 400 else text[:397] + "..."
