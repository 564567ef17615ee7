from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from tiny_learner_model import TINY_WINDOW, held_out, tiny_gru, train_tiny

from inference.features import EVENT_FEATURES, QUERY_FEATURES
from inference.states import STATES
from inference.training.export import onnx_bytes
from inference.training.modeling import TutorStreamConfig, TutorStreamModel
from inference.training.train import _loss_on

pytestmark = pytest.mark.unit


def _config(encoder: str, **kw: Any) -> TutorStreamConfig:
    return TutorStreamConfig(
        encoder=encoder,
        event_features=list(EVENT_FEATURES),
        query_features=list(QUERY_FEATURES),
        window=TINY_WINDOW,
        hidden_size=8,
        num_heads=2,
        intermediate_size=16,
        **kw,
    )


def _windows(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    events = rng.normal(size=(n, TINY_WINDOW, len(EVENT_FEATURES))).astype(np.float32)
    lengths = rng.integers(1, TINY_WINDOW + 1, size=n)
    mask = np.arange(TINY_WINDOW)[None, :] >= (TINY_WINDOW - lengths[:, None])
    events *= mask[:, :, None]
    query = rng.normal(size=(n, len(QUERY_FEATURES))).astype(np.float32)
    return torch.from_numpy(events), torch.from_numpy(mask), torch.from_numpy(query)


def test_config_refuses_unknown_encoder_and_bad_states() -> None:
    with pytest.raises(ValueError, match="encoder"):
        _config("lstm")
    with pytest.raises(ValueError, match="states"):
        _config("gru", states=["gaming", "none"])
    with pytest.raises(ValueError, match="num_heads"):
        TutorStreamConfig(encoder="transformer", hidden_size=10, num_heads=4)


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_save_and_load_pretrained_round_trip(encoder: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = TutorStreamModel(_config(encoder, decision_thresholds={"gaming": 0.4})).eval()
    model.save_pretrained(str(tmp_path))
    loaded = TutorStreamModel.from_pretrained(str(tmp_path)).eval()
    assert loaded.config.event_features == list(EVENT_FEATURES)
    assert loaded.config.states == list(STATES)
    assert loaded.config.decision_thresholds == {"gaming": 0.4}
    events, mask, query = _windows(16)
    with torch.no_grad():
        a = model.predict_proba(events, mask, query)
        b = loaded.predict_proba(events, mask, query)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].shape == (16, len(STATES)) and a[1].shape == (16,)
    assert torch.allclose(a[0].sum(dim=1), torch.ones(16))


@pytest.mark.parametrize("encoder", ["gru", "transformer"])
def test_padding_content_is_ignored(encoder: str) -> None:
    torch.manual_seed(1)
    model = TutorStreamModel(_config(encoder)).eval()
    events, mask, query = _windows(32, seed=3)
    noisy = events.clone()
    noisy[~mask] = torch.randn(int((~mask).sum()), len(EVENT_FEATURES)) * 5
    with torch.no_grad():
        clean_out = model.predict_proba(events, mask, query)
        noisy_out = model.predict_proba(noisy, mask, query)
    assert torch.allclose(clean_out[0], noisy_out[0], atol=1e-6)
    assert torch.allclose(clean_out[1], noisy_out[1], atol=1e-6)


def test_gru_window_equals_state_carried_event_by_event() -> None:
    torch.manual_seed(2)
    model = TutorStreamModel(_config("gru")).eval()
    events, mask, _ = _windows(12, seed=4)
    with torch.no_grad():
        encoded = model.encode(events, mask)
        mask_f = mask.float().unsqueeze(2)
        projected = model.event_projection(torch.cat([events * mask_f, mask_f], dim=2))
        gru = model.encoder.gru
        assert isinstance(gru, torch.nn.GRU)
        for row in range(len(events)):
            h = torch.zeros(1, 1, model.config.hidden_size)
            for t in torch.nonzero(mask[row]).flatten():
                _, h = gru(projected[row, t].view(1, 1, -1), h)
            assert torch.allclose(h.view(-1), encoded[row], atol=1e-6)


def test_training_lowers_validation_loss_and_respects_the_alert_cap() -> None:
    result = tiny_gru()
    untrained = TutorStreamModel(result.model.config).eval()
    data = held_out()
    assert _loss_on(result.model, data) < _loss_on(untrained, data)
    assert set(result.model.config.decision_thresholds) == set(STATES[1:])
    assert result.validation["false_alert_rate_none"] <= 0.015


def test_training_repeats_bit_for_bit() -> None:
    first = train_tiny(seed=23)
    second = train_tiny(seed=23)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.model.config.decision_thresholds == second.model.config.decision_thresholds
    digest = [hashlib.sha256(onnx_bytes(r.model)).hexdigest() for r in (first, second)]
    assert digest[0] == digest[1]
    other = train_tiny(seed=24)
    assert not torch.equal(
        other.model.state_dict()["state_head.1.weight"], a["state_head.1.weight"]
    )
