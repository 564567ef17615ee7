from __future__ import annotations

import pytest
from contract_data import KEY

from schemas.pseudonym import Pseudonymiser


@pytest.fixture
def key() -> bytes:
    return KEY


@pytest.fixture
def pseudonymiser() -> Pseudonymiser:
    return Pseudonymiser(KEY)
