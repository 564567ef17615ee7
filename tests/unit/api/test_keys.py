from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.keys import (
    Principal,
    Scope,
    check_scopes,
    hash_matches,
    new_token,
    secret_hash,
    split_basic,
    split_token,
)

pytestmark = pytest.mark.unit


def test_a_new_token_splits_back_into_its_id_and_secret():
    key_id, secret, token = new_token()
    assert token.startswith("tsk_") and len(key_id) == 12
    assert split_token(token) == (key_id, secret)
    assert split_basic(key_id, secret) == (key_id, secret)
    assert split_basic(f"tsk_{key_id}", secret) == (key_id, secret)


def test_only_the_hash_is_kept_and_it_checks_the_secret():
    key_id, secret, _ = new_token()
    stored = secret_hash(key_id, secret)
    assert secret not in stored and len(stored) == 64
    assert hash_matches(key_id, secret, stored)
    assert not hash_matches(key_id, secret[:-1] + ("A" if secret[-1] != "A" else "B"), stored)
    other_id, _, _ = new_token()
    assert not hash_matches(other_id, secret, stored)


@given(st.text(max_size=80))
def test_anything_that_is_not_a_token_is_refused(text):
    if text.startswith("tsk_") and len(text) == 60:
        return
    assert split_token(text) is None


def test_malformed_tokens():
    key_id, secret, token = new_token()
    # A hex id may be all digits, which upper() leaves unchanged: force a letter in.
    upper_id = "A" + key_id[1:].upper()
    for bad in (
        token[:-1],
        token + "x",
        token.replace("tsk_", "tsx_"),
        f"tsk_{key_id}-{secret}",
        f"tsk_{upper_id}_{secret}",
        base64.b64encode(token.encode()).decode(),
    ):
        assert split_token(bad) is None, bad


def test_scopes_and_classes_of_a_new_key():
    assert check_scopes(["tutor", "tutor"], ["7b", "7a"]) == (["tutor"], ["7a", "7b"])
    assert check_scopes(["ingest", "admin"], []) == (["admin", "ingest"], [])
    for scopes, classes in (
        ([], []),
        (["root"], []),
        (["tutor"], []),
        (["ingest"], ["7b"]),
        (["tutor"], ["has space"]),
    ):
        with pytest.raises(ValueError):
            check_scopes(scopes, classes)


def test_what_each_role_may_do():
    tutor = Principal("a" * 12, "t", frozenset({Scope.TUTOR}), frozenset({"7b"}))
    ingest = Principal("b" * 12, "i", frozenset({Scope.INGEST}))
    admin = Principal("c" * 12, "a", frozenset({Scope.ADMIN}))
    assert tutor.can_tutor("7b") and not tutor.can_tutor("7c") and not tutor.can_ingest()
    assert ingest.can_ingest() and not ingest.can_tutor("7b")
    assert admin.can_ingest() and admin.can_tutor("anything") and admin.can_read_statements()
