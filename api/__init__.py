"""The tutorstream API: LMS ingest endpoints and the tutor alerting API (FastAPI).

Public API: :func:`create_app` (with :class:`ApiSettings`), and :mod:`api.keys` for the keys
the API accepts.
"""

from api.app import create_app
from api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
