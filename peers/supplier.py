"""The card-key supplier's REST API: is a key redeemed, and lock it before we pay.

The protocol (the sandbox in `sandbox/supplier.py` serves the same one):

* `GET /v1/keys/{card_key_id}` -> 200 `{"card_key_id": ..., "state": "unredeemed" | "redeemed" |
  "invalid" | "locked" | "voided"}`; 404 `{"error": "key_not_found"}` for an unknown id.
* `POST /v1/keys/{card_key_id}/lock` with header `Idempotency-Key` and body `{"reason": ...}` ->
  200 `{"state": "locked", "lock_id": ...}`; the same key again answers the same; 409
  `{"error": "key_redeemed", "state": "redeemed"}` when the buyer redeemed it first; 404 when
  the id is unknown.
* `POST /v1/reservations` with header `Idempotency-Key` and body `{"sku", "order_id",
  "replaces"}` -> 200 `{"reservation_id", "card_key_id", "sku", "state": "reserved"}` (a fresh
  key held for us; the same idempotency key again answers the same reservation); 409
  `{"error": "out_of_stock"}` when the supplier has none.
* `GET /v1/reservations?idempotency_key=...` -> 200 the reservation made under that key; 404
  `{"error": "reservation_not_found"}` when none was made (so a call that timed out can be
  told apart from one that never happened).
* `POST /v1/reservations/{reservation_id}/confirm` `{"order_id", "buyer_id"}` -> 200 the
  reservation, `"state": "confirmed"`: the key is the buyer's (again: the same answer); 409
  `{"error": "reservation_expired" | "reservation_released", "state": ...}`.
* `POST /v1/reservations/{reservation_id}/release` -> 200 `"state": "released"` (the key goes
  back to stock); 409 `{"error": "reservation_confirmed", "state": "confirmed"}`.
* Every request carries `X-Api-Key`, `X-Timestamp` (unix seconds) and `X-Signature`, the hex
  HMAC-SHA256 with the shared secret of `METHOD\\nPATH?QUERY\\nTIMESTAMP\\nBODY`; the supplier
  refuses timestamps more than five minutes off, so a captured request cannot be replayed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from domain.types import KeyState

__all__ = [
    "SIGNATURE_MAX_SKEW_SECONDS",
    "Reservation",
    "SupplierClient",
    "SupplierRejected",
    "SupplierUnavailable",
    "supplier_signature",
]

logger = logging.getLogger(__name__)

SIGNATURE_MAX_SKEW_SECONDS = 300


class SupplierUnavailable(Exception):
    """The supplier did not answer usefully (timeout, connection, 5xx): retry later."""


class SupplierRejected(Exception):
    """The supplier refused our request itself (bad credentials, malformed): do not retry."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"supplier refused the request: HTTP {status} {code}")
        self.status = status
        self.code = code

    def __reduce__(self) -> tuple[type[SupplierRejected], tuple[int, str]]:
        return (type(self), (self.status, self.code))


@dataclass(frozen=True)
class Reservation:
    """A fresh key the supplier holds for us (`reserved`), handed to the buyer (`confirmed`),
    or gone (`released`, `expired`)."""

    reservation_id: str
    card_key_id: str
    state: str

    @classmethod
    def of(cls, document: dict[str, Any]) -> Reservation:
        try:
            return cls(
                reservation_id=str(document["reservation_id"]),
                card_key_id=str(document["card_key_id"]),
                state=str(document["state"]),
            )
        except KeyError as exc:
            raise SupplierUnavailable(f"supplier's reservation lacks {exc}") from exc


def supplier_signature(secret: str, *, method: str, path: str, timestamp: str, body: bytes) -> str:
    message = f"{method.upper()}\n{path}\n{timestamp}\n".encode() + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def _key_state(value: Any) -> KeyState:
    try:
        state = KeyState(str(value))
    except ValueError as exc:
        raise SupplierUnavailable(f"supplier answered an unknown key state {value!r}") from exc
    if state is KeyState.UNREACHABLE:  # our word, never the supplier's
        raise SupplierUnavailable("supplier answered an unknown key state")
    return state


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        document = response.json()
    except ValueError as exc:
        raise SupplierUnavailable("supplier answered something that is not JSON") from exc
    if not isinstance(document, dict):
        raise SupplierUnavailable("supplier answered something that is not a JSON object")
    return document


class SupplierClient:
    """Asks suppliers about card keys; `url_for(supplier)` gives each supplier's base URL."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        url_for: Callable[[str], str],
        api_key: str,
        secret: str,
    ) -> None:
        self._http = http
        self._url_for = url_for
        self._api_key = api_key
        self._secret = secret

    async def query_key(self, supplier: str, card_key_id: str) -> KeyState:
        """What the supplier says about the key now; an unknown id is INVALID."""
        response = await self._send(supplier, "GET", self._key_path(card_key_id))
        if response.status_code == 404:
            return KeyState.INVALID
        self._raise_for_status(response)
        return _key_state(_json(response).get("state"))

    async def lock_key(self, supplier: str, card_key_id: str, *, idempotency_key: str) -> KeyState:
        """Lock an unredeemed key so it can no longer be redeemed.

        Answers LOCKED (or VOIDED) when the key is out of the buyer's reach, including on a
        repeat; REDEEMED when the buyer redeemed it first (a fact, not an error); INVALID for
        an unknown key.
        """
        body = json.dumps({"reason": "refund"}).encode()
        response = await self._send(
            supplier,
            "POST",
            self._key_path(card_key_id) + "/lock",
            body=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code == 404:
            return KeyState.INVALID
        if response.status_code == 409:
            # The key is in a state that cannot be locked: the answer says which.
            return _key_state(_json(response).get("state", KeyState.REDEEMED))
        self._raise_for_status(response)
        return _key_state(_json(response).get("state"))

    async def reserve_key(
        self, supplier: str, *, sku: str, order_id: str, replaces: str, idempotency_key: str
    ) -> Reservation | None:
        """Hold a fresh key of `sku` for us; None when the supplier has none in stock. The
        idempotency key makes a repeat (after a timeout) the same reservation."""
        body = json.dumps({"sku": sku, "order_id": order_id, "replaces": replaces}).encode()
        response = await self._send(
            supplier,
            "POST",
            "/v1/reservations",
            body=body,
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code == 409 and _json(response).get("error") == "out_of_stock":
            return None
        self._raise_for_status(response)
        return Reservation.of(_json(response))

    async def find_reservation(self, supplier: str, *, idempotency_key: str) -> Reservation | None:
        """The reservation made under `idempotency_key`, or None when none was made."""
        response = await self._send(
            supplier,
            "GET",
            f"/v1/reservations?idempotency_key={quote(idempotency_key, safe='')}",
        )
        if response.status_code == 404:
            return None
        self._raise_for_status(response)
        return Reservation.of(_json(response))

    async def confirm_reservation(
        self, supplier: str, reservation_id: str, *, order_id: str, buyer_id: str
    ) -> Reservation:
        """Hand the reserved key to the buyer. A repeat answers the same; a reservation that
        lapsed or was released comes back in that state (a fact, not an error)."""
        body = json.dumps({"order_id": order_id, "buyer_id": buyer_id}).encode()
        return await self._reservation_step(supplier, reservation_id, "confirm", body)

    async def release_reservation(self, supplier: str, reservation_id: str) -> Reservation:
        """Give a reserved key back to stock; a confirmed one stays the buyer's."""
        return await self._reservation_step(supplier, reservation_id, "release", b"{}")

    async def _reservation_step(
        self, supplier: str, reservation_id: str, step: str, body: bytes
    ) -> Reservation:
        path = f"/v1/reservations/{quote(reservation_id, safe='')}/{step}"
        response = await self._send(supplier, "POST", path, body=body)
        document = _json(response)
        if response.status_code == 409 and "state" in document:
            return Reservation(
                reservation_id, str(document.get("card_key_id", "")), document["state"]
            )
        self._raise_for_status(response)
        return Reservation.of(document)

    @staticmethod
    def _key_path(card_key_id: str) -> str:
        return f"/v1/keys/{quote(card_key_id, safe='')}"

    async def _send(
        self,
        supplier: str,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        request = self._http.build_request(
            method,
            self._url_for(supplier).rstrip("/") + path,
            content=body or None,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        timestamp = str(int(time.time()))
        request.headers["X-Api-Key"] = self._api_key
        request.headers["X-Timestamp"] = timestamp
        request.headers["X-Signature"] = supplier_signature(
            self._secret,
            method=method,
            path=request.url.raw_path.decode("ascii"),
            timestamp=timestamp,
            body=body,
        )
        try:
            response = await self._http.send(request)
        except httpx.TransportError as exc:
            raise SupplierUnavailable(f"supplier {supplier}: {type(exc).__name__}") from exc
        if response.status_code >= 500 or response.status_code == 429:
            raise SupplierUnavailable(f"supplier {supplier}: HTTP {response.status_code}")
        return response

    @staticmethod
    def _raise_for_status(response: httpx.Response) -> None:
        if response.is_success:
            return
        try:
            code = str(response.json().get("error", ""))
        except ValueError:
            code = ""
        logger.warning("supplier refused request: HTTP %s %s", response.status_code, code)
        raise SupplierRejected(response.status_code, code)
