"""Settings of the tutors' console: ``TUTORSTREAM_CONSOLE__*`` (and ``TUTORSTREAM_ROSTER_KEY``)."""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr

DEV_SESSION_KEY = "tutorstream-dev-console-session-key-not-secret"
"""The development key of session cookies; production mode refuses it."""
DEV_ROSTER_KEY = "tutorstream-dev-roster-key-not-secret-0000"
"""The development key of the roster's encryption; production mode refuses it."""


class ConsoleOptions(BaseModel):
    """What only the console reads: ``TUTORSTREAM_CONSOLE__*``.

    Attributes:
        oidc_issuer: ``TUTORSTREAM_CONSOLE__OIDC_ISSUER``, the school's OpenID Provider (its
            ``/.well-known/openid-configuration`` is read from there); empty turns sign-in off.
        oidc_client_id: ``TUTORSTREAM_CONSOLE__OIDC_CLIENT_ID``, the console's client id.
        oidc_client_secret: ``TUTORSTREAM_CONSOLE__OIDC_CLIENT_SECRET``, its secret (sent with
            HTTP Basic to the token endpoint).
        oidc_scopes: ``TUTORSTREAM_CONSOLE__OIDC_SCOPES``, the scopes asked for.
        classes_claim: ``TUTORSTREAM_CONSOLE__CLASSES_CLAIM``, the ID token claim that lists
            the classes a tutor may see (a list of strings, or one string).
        redirect_url: ``TUTORSTREAM_CONSOLE__REDIRECT_URL``, the callback URL registered with
            the provider; empty derives it from the request (``…/console/callback``).
        session_key: ``TUTORSTREAM_CONSOLE__SESSION_KEY``, signs session cookies.
        session_max_age_s: ``TUTORSTREAM_CONSOLE__SESSION_MAX_AGE_S``, longest session; the ID
            token's own expiry ends it sooner when that comes first.
        cookie_secure: ``TUTORSTREAM_CONSOLE__COOKIE_SECURE``, send cookies over HTTPS only
            (turn off only for a console served on plain HTTP in development).
        http_timeout_s: ``TUTORSTREAM_CONSOLE__HTTP_TIMEOUT_S``, longest wait for the provider.
        webhook_attempts: ``TUTORSTREAM_CONSOLE__WEBHOOK_ATTEMPTS``, tries of one delivery
            before it is dead-lettered.
        webhook_backoff_s: ``TUTORSTREAM_CONSOLE__WEBHOOK_BACKOFF_S``, wait before the second
            try, doubled after each failure.
        webhook_timeout_s: ``TUTORSTREAM_CONSOLE__WEBHOOK_TIMEOUT_S``, longest wait for the
            LMS to answer one delivery.
        webhook_poll_s: ``TUTORSTREAM_CONSOLE__WEBHOOK_POLL_S``, how often the sender looks
            for deliveries that are due.
        grafana_url: ``TUTORSTREAM_CONSOLE__GRAFANA_URL``, base URL of the Grafana boards, for
            links from the class pages; empty hides the links.
    """

    oidc_issuer: str = ""
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_scopes: str = "openid profile email groups"
    classes_claim: str = Field(default="groups", min_length=1)
    redirect_url: str = ""
    session_key: SecretStr = SecretStr(DEV_SESSION_KEY)
    session_max_age_s: int = Field(default=8 * 3600, ge=60)
    cookie_secure: bool = True
    http_timeout_s: float = Field(default=10.0, gt=0)
    webhook_attempts: int = Field(default=6, ge=1, le=50)
    webhook_backoff_s: float = Field(default=2.0, gt=0)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    webhook_poll_s: float = Field(default=1.0, gt=0)
    grafana_url: str = ""
