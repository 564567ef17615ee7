from __future__ import annotations

import json

import pytest
from api_support import ApiEnv

pytestmark = pytest.mark.integration


def test_keys_create_list_revoke(run_cli, api_env: ApiEnv, client):
    env = {
        "TUTORSTREAM_DATABASE_URL": api_env.database_url,
        "TUTORSTREAM_STORE__DB_SCHEMA": api_env.schema,
    }
    made = run_cli(
        "keys", "create", "--name", "ms smith", "--scope", "tutor", "--class", "7b", env=env
    )
    assert made.returncode == 0, made.stderr
    token = next(line.split()[1] for line in made.stdout.splitlines() if line.startswith("token"))
    key_id = next(line.split()[2] for line in made.stdout.splitlines() if line.startswith("key id"))
    assert token.startswith(f"tsk_{key_id}_")

    listed = run_cli("keys", "list", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    row = next(k for k in json.loads(listed.stdout) if k["key_id"] == key_id)
    assert row["scopes"] == ["tutor"] and row["class_ids"] == ["7b"]
    assert token.split("_")[-1] not in listed.stdout  # the secret is never shown again
    with api_env.connect() as conn:
        stored = conn.execute(
            "SELECT secret_hash FROM api_keys WHERE key_id = %s", (key_id,)
        ).fetchone()
    assert stored is not None and token[17:] not in stored[0]

    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/classes/7b/interventions", headers=auth).status_code == 200
    revoked = run_cli("keys", "revoke", key_id, env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert client.get("/classes/7b/interventions", headers=auth).status_code == 401
    again = run_cli("keys", "revoke", key_id, env=env)
    assert again.returncode == 1 and "no active key" in again.stderr

    bad = run_cli("keys", "create", "--name", "x", "--scope", "tutor", env=env)
    assert bad.returncode == 1 and "needs the classes" in bad.stderr
