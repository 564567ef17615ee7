"""Keyed pseudonyms for learner identifiers.

Every inbound format names its learner differently: xAPI with an Inverse Functional Identifier
(``mbox``, ``mbox_sha1sum``, ``openid`` or ``account``), Caliper with the actor's IRI, the native
format with a producer's own id. At normalisation each one becomes
``HMAC-SHA256(key, kind || 0x1f || identifier)`` written as 64 lowercase hex characters, and only
that pseudonym travels on. The key (``TUTORSTREAM_PSEUDONYM_KEY``) never leaves the process; without
it a pseudonym cannot be linked back to an identifier, even by someone holding a list of emails.

Two identifiers that name the same person in xAPI give the same pseudonym: an ``mbox`` is reduced
to the SHA-1 of its ``mailto:`` IRI (with the domain lowercased, as the xAPI specification asks
producers to do when they compute ``mbox_sha1sum``) before it is keyed, so a statement sent with
``mbox`` and one sent with the matching ``mbox_sha1sum`` land on the same learner.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from enum import StrEnum

PSEUDONYM_LENGTH = 64
"""Length of a pseudonym: the hex digest of HMAC-SHA256."""

_SEPARATOR = "\x1f"
_SHA256_BLOCK = 64
_IPAD = bytes(byte ^ 0x36 for byte in range(256))
_OPAD = bytes(byte ^ 0x5C for byte in range(256))


class IdentifierKind(StrEnum):
    """Namespaces of identifiers; keyed in, so equal strings of different kinds never collide."""

    MBOX_SHA1SUM = "mbox_sha1sum"
    OPENID = "openid"
    ACCOUNT = "account"
    CALIPER = "caliper"
    NATIVE = "native"


def mbox_sha1sum_of(mbox: str) -> str:
    """Return the ``mbox_sha1sum`` that matches an xAPI ``mbox`` (``mailto:`` IRI).

    The domain part is lowercased first: domains are case-insensitive and the xAPI specification
    (Data 2.4.2.3) asks producers to lowercase it before hashing.
    """
    local, at, domain = mbox.rpartition("@")
    canonical = f"{local}{at}{domain.lower()}" if at else mbox
    return hashlib.sha1(
        canonical.encode("utf-8", "surrogatepass"), usedforsecurity=False
    ).hexdigest()


# The namespace prefixes as plain strings: the enum's .value lookup is slow on the hot path.
_MBOX_PREFIX = f"{IdentifierKind.MBOX_SHA1SUM.value}{_SEPARATOR}"
_ACCOUNT_PREFIX = f"{IdentifierKind.ACCOUNT.value}{_SEPARATOR}"
_OPENID_PREFIX = f"{IdentifierKind.OPENID.value}{_SEPARATOR}"


class Pseudonymiser:
    """Turns learner identifiers into keyed pseudonyms; one instance per key, safe to share.

    Args:
        key: the HMAC key, from ``TUTORSTREAM_PSEUDONYM_KEY``.

    Raises:
        ValueError: when the key is empty.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not key:
            raise ValueError("the pseudonym key must not be empty")
        # HMAC (RFC 2104) with the keyed inner and outer SHA-256 states computed once: copying
        # them per call costs a third of what hmac.HMAC.copy() does, on the ingest hot path.
        block = bytes(key)
        if len(block) > _SHA256_BLOCK:
            block = hashlib.sha256(block).digest()
        block = block.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def pseudonym(self, kind: IdentifierKind, identifier: str) -> str:
        """Return the pseudonym of ``identifier`` in the namespace ``kind``."""
        return self._keyed(f"{kind}{_SEPARATOR}{identifier}")

    def _keyed(self, message: str) -> str:
        inner = self._inner.copy()
        inner.update(message.encode("utf-8", "surrogatepass"))
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def xapi_agent(self, agent: Mapping[str, object]) -> str:
        """Return the pseudonym of an xAPI Agent or identified Group (a parsed JSON object).

        Raises:
            ValueError: when the agent carries no usable Inverse Functional Identifier.
        """
        account = agent.get("account")
        home = name = None
        if isinstance(account, Mapping):
            home, name = account.get("homePage"), account.get("name")
        return self.xapi_identifier(
            mbox=agent.get("mbox"),
            mbox_sha1sum=agent.get("mbox_sha1sum"),
            openid=agent.get("openid"),
            home_page=home,
            account_name=name,
        )

    def xapi_identifier(
        self,
        *,
        mbox: object = None,
        mbox_sha1sum: object = None,
        openid: object = None,
        home_page: object = None,
        account_name: object = None,
    ) -> str:
        """Return the pseudonym for the one Inverse Functional Identifier given (others ``None``).

        Raises:
            ValueError: when no identifier is a string.
        """
        if type(mbox) is str:
            return self.mbox(mbox)
        if type(home_page) is str and type(account_name) is str:
            return self.account(home_page, account_name)
        if type(mbox_sha1sum) is str:
            return self._keyed(_MBOX_PREFIX + mbox_sha1sum.lower())
        if type(openid) is str:
            return self._keyed(_OPENID_PREFIX + openid)
        raise ValueError("agent has no Inverse Functional Identifier")

    def mbox(self, mbox: str) -> str:
        """Return the pseudonym of an xAPI ``mbox`` (the same as for its ``mbox_sha1sum``)."""
        return self._keyed(_MBOX_PREFIX + mbox_sha1sum_of(mbox))

    def account(self, home_page: str, name: str) -> str:
        """Return the pseudonym of an xAPI ``account``."""
        return self._keyed(f"{_ACCOUNT_PREFIX}{home_page}{_SEPARATOR}{name}")

    def caliper_actor(self, actor_id: str) -> str:
        """Return the pseudonym of a Caliper actor, from its IRI."""
        return self.pseudonym(IdentifierKind.CALIPER, actor_id)

    def native_learner(self, learner_id: str) -> str:
        """Return the pseudonym of a native event's learner id."""
        return self.pseudonym(IdentifierKind.NATIVE, learner_id)


def pseudonymise(kind: IdentifierKind, identifier: str, key: bytes) -> str:
    """Return the pseudonym of one identifier; prefer a :class:`Pseudonymiser` in loops."""
    return Pseudonymiser(key).pseudonym(kind, identifier)
