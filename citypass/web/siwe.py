"""Sign-In with Ethereum (EIP-4361) for the back office: nonces, verification, sessions.

1. The page asks for a nonce (`SignIn.new_nonce`): random, single-use, valid NONCE_TTL seconds.
2. The page builds the EIP-4361 message (`message_text` shows the shape; the page's JS writes
   the same lines) and the officer's wallet signs it (`personal_sign`).
3. `SignIn.verify` parses it with the `siwe` package (spruceid/siwe-py), and refuses it unless:
   it is in canonical form; its domain is the page's Host and its URI the page's origin; its
   chain id is the server's; its nonce was issued here and not used before (a nonce is used up
   by the first attempt with it, whatever the outcome); it was issued within MAX_SKEW of the
   server's clock; it has an expiration time, at most MAX_MESSAGE_LIFE after issued-at, not
   passed; and the signature recovers to its address.
4. The server then reads the officer's roles on chain and opens a session: a random token in
   an HttpOnly, SameSite=Strict cookie that lives SESSION_TTL seconds. Sessions live in memory
   only: a restart signs everyone out, which is the safe side.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable

from eth_utils import to_checksum_address

NONCE_TTL = 300  # seconds a nonce may wait for its signature
MAX_SKEW = 300  # seconds a message's issued-at may differ from the server's clock
MAX_MESSAGE_LIFE = 600  # expiration time at most this long after issued-at
SESSION_TTL = 15 * 60  # the session cookie's lifetime
MAX_NONCES = 10_000  # outstanding; the oldest are forgotten first
COOKIE = "cp_backoffice"
STATEMENT = "Inloggen bij de CityPass back office van de gemeente. Sign in to the municipality's CityPass back office."


class SignInRefused(Exception):
    """Why a sign-in message was refused (shown to the officer), and the field to blame."""

    def __init__(self, message: str, field: str = "message"):
        super().__init__(message)
        self.field = field


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def message_text(*, domain: str, address: str, uri: str, chain_id: int, nonce: str, issued_at: str,
                 expiration_time: str, statement: str = STATEMENT) -> str:
    """The EIP-4361 message, exactly as the page builds it."""
    return "\n".join([
        f"{domain} wants you to sign in with your Ethereum account:",
        to_checksum_address(address),
        "",
        statement,
        "",
        f"URI: {uri}",
        "Version: 1",
        f"Chain ID: {chain_id}",
        f"Nonce: {nonce}",
        f"Issued At: {issued_at}",
        f"Expiration Time: {expiration_time}",
    ])


@dataclass
class Session:
    address: str
    roles: tuple[str, ...]
    expires: float
    token: str = field(repr=False, default="")


class SignIn:
    """Nonces and sessions of one server (in memory; `clock` for tests)."""

    def __init__(self, clock: Callable[[], float] = time.time, session_ttl: int = SESSION_TTL):
        self.clock = clock
        self.session_ttl = session_ttl
        self._nonces: dict[str, float] = {}
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ nonces
    def new_nonce(self) -> str:
        nonce = secrets.token_hex(16)  # 32 alphanumerics (EIP-4361: at least 8)
        now = self.clock()
        with self._lock:
            for old in [n for n, t in self._nonces.items() if now - t > NONCE_TTL]:
                del self._nonces[old]
            while len(self._nonces) >= MAX_NONCES:
                del self._nonces[next(iter(self._nonces))]
            self._nonces[nonce] = now
        return nonce

    def _use_nonce(self, nonce: str) -> None:
        with self._lock:
            issued = self._nonces.pop(nonce, None)
        if issued is None:
            raise SignInRefused("nonce: this sign-in message was not issued by this server, or it was used before "
                                "(a message signs in once); press Sign in again", "nonce")
        if self.clock() - issued > NONCE_TTL:
            raise SignInRefused(f"nonce: the sign-in took longer than {NONCE_TTL // 60} minutes; press Sign in again",
                                "nonce")

    # ------------------------------------------------------------------ verification
    def verify(self, text: str, signature: str, *, domain: str, origin: str, chain_id: int) -> str:
        """The checksummed address that signed `text`, or SignInRefused (see the module docstring)."""
        from siwe import SiweMessage

        if not isinstance(text, str) or not 50 <= len(text) <= 2000:
            raise SignInRefused("message: expected the signed EIP-4361 message as text")
        if not isinstance(signature, str) or len(signature) > 200:
            raise SignInRefused("signature: expected 0x + 130 hex digits", "signature")
        try:
            msg = SiweMessage.from_message(text, abnf=True)
        except Exception as exc:  # noqa: BLE001 - the parser's errors vary; all mean malformed
            raise SignInRefused(f"message: not an EIP-4361 sign-in message ({str(exc)[:120]})") from None
        if msg.prepare_message() != text:
            raise SignInRefused("message: not in the canonical EIP-4361 form")
        # the nonce is used up first: a refused message cannot be retried with the same nonce
        self._use_nonce(msg.nonce)
        if msg.domain != domain:
            raise SignInRefused(f"domain: the message is for {msg.domain[:80]!r}, this is {domain!r}; sign in "
                                "on this page", "domain")
        if str(msg.uri).rstrip("/") != origin and not str(msg.uri).startswith(origin + "/"):
            raise SignInRefused(f"uri: the message is for {str(msg.uri)[:80]!r}, not this site ({origin})", "uri")
        if int(msg.chain_id) != chain_id:
            raise SignInRefused(f"chain: the message is for chain {msg.chain_id}, this back office runs on chain "
                                f"{chain_id}", "chain")
        now = self.clock()
        issued = datetime.fromisoformat(str(msg.issued_at).replace("Z", "+00:00")).timestamp()
        if abs(now - issued) > MAX_SKEW:
            raise SignInRefused(f"issued_at: the message was made at {msg.issued_at}, more than {MAX_SKEW // 60} "
                                "minutes from the server's clock; check the computer's clock", "issued_at")
        if msg.expiration_time is None:
            raise SignInRefused("expiration_time: the message must say when it expires", "expiration_time")
        expires = datetime.fromisoformat(str(msg.expiration_time).replace("Z", "+00:00")).timestamp()
        if expires - issued > MAX_MESSAGE_LIFE:
            raise SignInRefused(f"expiration_time: at most {MAX_MESSAGE_LIFE // 60} minutes after issued-at",
                                "expiration_time")
        if expires <= now:
            raise SignInRefused("expiration_time: the sign-in message has expired; press Sign in again",
                                "expiration_time")
        try:
            msg.verify(signature, domain=domain, nonce=msg.nonce,
                       timestamp=datetime.fromtimestamp(now, timezone.utc))
        except Exception as exc:  # noqa: BLE001 - siwe's VerificationError family
            name = type(exc).__name__
            if name == "ExpiredMessage":
                raise SignInRefused("expiration_time: the sign-in message has expired", "expiration_time") from None
            raise SignInRefused("signature: not signed by the address in the message", "signature") from None
        return to_checksum_address(msg.address)

    # ------------------------------------------------------------------ sessions
    def open(self, address: str, roles: tuple[str, ...]) -> Session:
        token = secrets.token_urlsafe(32)
        session = Session(to_checksum_address(address), roles, self.clock() + self.session_ttl, token)
        with self._lock:
            now = self.clock()
            for old in [t for t, s in self._sessions.items() if s.expires <= now]:
                del self._sessions[old]
            self._sessions[token] = session
        return session

    def get(self, token: str | None) -> Session | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            if session is not None and session.expires <= self.clock():
                del self._sessions[token]
                session = None
        return session

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(token, None)


__all__ = ["SignIn", "SignInRefused", "Session", "message_text", "COOKIE", "SESSION_TTL", "iso"]
