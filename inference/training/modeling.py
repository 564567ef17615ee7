"""The learner model: a multi-task sequence model over a learner's recent events.

One encoder reads the last ``window`` event-feature vectors of a learner (left-padded, the
decision event last) and feeds two heads:

* the behavioural-state head, six-way logits for the state at the decision event;
* the next-answer head, the probability that the learner answers the next item correctly,
  given that item's query features.

The encoder is either a small ``transformers`` BERT encoder built from a config in code (no hub
download) or a GRU whose hidden state is what a stream would carry per learner; which one ships
is decided by measurement and written in the model card. Either way the model is a
``PreTrainedModel`` with its own ``PretrainedConfig``, so ``save_pretrained`` and
``from_pretrained`` give the registry a standard folder.

This module imports torch and transformers; the serving path never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812 - the conventional alias
import transformers
from torch import nn
from transformers import BertConfig, BertModel, PretrainedConfig, PreTrainedModel
from transformers import initialization as init
from transformers.models.bert.modeling_bert import BertEmbeddings
from transformers.utils.generic import ModelOutput

from inference.states import STATES

ENCODERS = ("gru", "transformer")

# a model folder holds one small shard; per-shard progress bars only clutter training logs
transformers.utils.logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # untyped upstream


class TutorStreamConfig(PretrainedConfig):  # type: ignore[no-untyped-call]  # untyped upstream
    """Configuration of :class:`TutorStreamModel`; saved as ``config.json`` in a model folder.

    Besides the architecture it records the feature names the model was trained on (the
    runtime refuses features of another layout) and the decision thresholds that turn state
    probabilities into alerts, so training, evaluation and the stream apply the same rule.

    Attributes:
        encoder: ``"gru"`` or ``"transformer"``.
        event_features: names of the per-event features, in input order.
        query_features: names of the next-item query features, in input order.
        states: behavioural state names, in output order; ``states[0]`` is ``none``.
        window: number of events per input window.
        hidden_size: width of the encoder and heads.
        num_layers: encoder layers.
        num_heads: attention heads (transformer only).
        intermediate_size: feed-forward width (transformer only).
        dropout: dropout inside the encoder and heads during training.
        next_loss_weight: weight of the next-answer loss beside the state loss.
        decision_thresholds: per non-``none`` state, the probability at or above which the
            state is raised; filled in by training.
        training: how the model was trained (seed, data, sizes), for reproduction.
        initializer_range: standard deviation of the initial linear weights.
    """

    model_type = "tutorstream"

    encoder: str = "gru"
    event_features: list[str] = field(default_factory=list)
    query_features: list[str] = field(default_factory=list)
    states: list[str] = field(default_factory=lambda: list(STATES))
    window: int = 32
    hidden_size: int = 64
    num_layers: int = 1
    num_heads: int = 4
    intermediate_size: int = 128
    dropout: float = 0.1
    next_loss_weight: float = 1.0
    decision_thresholds: dict[str, float] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)  # type: ignore[no-untyped-call]  # untyped upstream
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder: must be one of {ENCODERS}, got {self.encoder!r}")
        if self.encoder == "transformer" and self.hidden_size % self.num_heads:
            raise ValueError(
                f"hidden_size: {self.hidden_size} is not divisible by num_heads={self.num_heads}"
            )
        if not self.states or self.states[0] != "none":
            raise ValueError(f"states: the first state must be 'none', got {self.states!r}")

    @property
    def n_event_features(self) -> int:
        """Width of one event-feature vector."""
        return len(self.event_features)

    @property
    def n_query_features(self) -> int:
        """Width of the query-feature vector."""
        return len(self.query_features)

    def bert_config(self) -> BertConfig:
        """Return the config of the BERT encoder, built in code (nothing downloaded)."""
        return BertConfig(
            vocab_size=1,  # events arrive as embeddings; the token table is never used
            type_vocab_size=1,
            hidden_size=self.hidden_size,
            num_hidden_layers=self.num_layers,
            num_attention_heads=self.num_heads,
            intermediate_size=self.intermediate_size,
            max_position_embeddings=self.window,
            hidden_dropout_prob=self.dropout,
            attention_probs_dropout_prob=self.dropout,
            initializer_range=self.initializer_range,
            # plain ONNX ops on export, the same numbers as sdpa; a config kwarg, not a field
            attn_implementation="eager",  # type: ignore[call-arg]
        )


@dataclass
class TutorStreamOutput(ModelOutput):
    """What :meth:`TutorStreamModel.forward` returns.

    Attributes:
        loss: weighted sum of the state cross-entropy and the next-answer log-loss, when
            labels were given.
        state_logits: ``[B, S]`` logits over the behavioural states.
        next_logit: ``[B]`` logit of a correct next answer.
        state_loss: the state part of ``loss``.
        next_loss: the next-answer part of ``loss``.
    """

    loss: torch.Tensor | None = None
    state_logits: torch.Tensor | None = None
    next_logit: torch.Tensor | None = None
    state_loss: torch.Tensor | None = None
    next_loss: torch.Tensor | None = None


class _GRUEncoder(nn.Module):
    """GRU over the real events of each window, read at the decision event.

    Windows are left-padded; rotating each row so its real events come first lets the fused
    GRU run from a zero state over exactly the learner's events, which is what carrying the
    hidden state per learner in a stream computes.
    """

    def __init__(self, config: TutorStreamConfig) -> None:
        super().__init__()
        self.num_layers = config.num_layers
        self.hidden_size = config.hidden_size
        self.gru = nn.GRU(
            config.hidden_size,
            config.hidden_size,
            num_layers=config.num_layers,
            batch_first=True,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, steps, width = x.shape
        lengths = mask.sum(dim=1).clamp(min=1)
        positions = torch.arange(steps, device=x.device).unsqueeze(0)
        rotated = (positions + (steps - lengths).unsqueeze(1)) % steps
        x = torch.gather(x, 1, rotated.unsqueeze(2).expand(batch, steps, width))
        # an explicit zero state keeps the batch axis dynamic in the exported graph
        h0 = x.new_zeros(self.num_layers, batch, self.hidden_size)
        out, _ = self.gru(x, h0)
        last = (lengths - 1).view(batch, 1, 1).expand(batch, 1, self.hidden_size)
        return torch.gather(out, 1, last).squeeze(1)


class _TransformerEncoder(nn.Module):
    """BERT encoder over the window, read at the decision event (the last position)."""

    def __init__(self, config: TutorStreamConfig) -> None:
        super().__init__()
        self.bert = BertModel(config.bert_config(), add_pooling_layer=False)  # type: ignore[no-untyped-call]  # untyped upstream

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.bert(inputs_embeds=x, attention_mask=mask.long()).last_hidden_state
        return hidden[:, -1]  # type: ignore[no-any-return]  # BertModel output is untyped


class TutorStreamModel(PreTrainedModel):  # type: ignore[no-untyped-call]  # untyped upstream
    """Multi-task learner model: behavioural state now, success on the next item.

    Inputs: ``events`` ``[B, T, F]`` float32, ``mask`` ``[B, T]`` (True at real events, the
    decision event at ``T-1``), ``query`` ``[B, Q]`` float32.
    """

    config_class = TutorStreamConfig
    config: TutorStreamConfig
    base_model_prefix = "tutorstream"
    main_input_name = "events"

    def __init__(self, config: TutorStreamConfig) -> None:
        super().__init__(config)
        hidden = config.hidden_size
        self.event_projection = nn.Sequential(
            nn.Linear(config.n_event_features + 1, hidden), nn.GELU()
        )
        self.encoder: nn.Module = (
            _GRUEncoder(config) if config.encoder == "gru" else _TransformerEncoder(config)
        )
        self.dropout = nn.Dropout(config.dropout)
        self.state_head = nn.Sequential(
            nn.LayerNorm(hidden), nn.Linear(hidden, hidden), nn.GELU(),
            nn.Linear(hidden, len(config.states)),
        )  # fmt: skip
        self.query_projection = nn.Sequential(nn.Linear(config.n_query_features, hidden), nn.GELU())
        self.next_head = nn.Sequential(
            nn.LayerNorm(2 * hidden), nn.Linear(2 * hidden, hidden), nn.GELU(),
            nn.Linear(hidden, 1),
        )  # fmt: skip
        self.post_init()  # type: ignore[no-untyped-call]  # untyped upstream

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # type: ignore[no-untyped-call]  # untyped upstream
        if isinstance(module, nn.GRU):
            for name, param in module.named_parameters():
                if "weight" in name:
                    init.xavier_uniform_(param)
                else:
                    init.zeros_(param)
        elif isinstance(module, BertEmbeddings):
            # a buffer that from_pretrained does not load, so it is set here as BERT does
            steps = module.position_ids.shape[-1]
            init.copy_(module.position_ids, torch.arange(steps).expand((1, -1)))
            init.zeros_(module.token_type_ids)

    def encode(self, events: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Return the ``[B, H]`` representation of each window at its decision event."""
        mask_f = mask.to(events.dtype)
        # the mask is an input channel too, so a padded step never looks like a real one
        x = torch.cat([events * mask_f.unsqueeze(2), mask_f.unsqueeze(2)], dim=2)
        x = self.event_projection(x)
        return self.dropout(self.encoder(x, mask.bool()))  # type: ignore[no-any-return]

    def logits(
        self, events: torch.Tensor, mask: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(state_logits [B, S], next_logit [B])``."""
        encoded = self.encode(events, mask)
        state_logits = self.state_head(encoded)
        next_logit = self.next_head(torch.cat([encoded, self.query_projection(query)], dim=1))
        return state_logits, next_logit.squeeze(1)

    def forward(
        self,
        events: torch.Tensor,
        mask: torch.Tensor,
        query: torch.Tensor,
        state_labels: torch.Tensor | None = None,
        next_labels: torch.Tensor | None = None,
        state_weights: torch.Tensor | None = None,
    ) -> TutorStreamOutput:
        """Run both heads and, given labels, the multi-task loss.

        Args:
            events: ``[B, T, F]`` event features, left-padded.
            mask: ``[B, T]`` True at real events.
            query: ``[B, Q]`` query features of the next item.
            state_labels: ``[B]`` state indices, for the loss.
            next_labels: ``[B]`` 0/1 correctness of the next answer, for the loss.
            state_weights: ``[S]`` class weights of the state loss.

        Returns:
            Logits of both heads, and the loss when both label tensors are given.
        """
        state_logits, next_logit = self.logits(events, mask, query)
        out = TutorStreamOutput(state_logits=state_logits, next_logit=next_logit)
        if state_labels is not None and next_labels is not None:
            state_loss = F.cross_entropy(state_logits, state_labels, weight=state_weights)
            next_loss = F.binary_cross_entropy_with_logits(next_logit, next_labels.float())
            out.state_loss = state_loss
            out.next_loss = next_loss
            out.loss = state_loss + self.config.next_loss_weight * next_loss
        return out

    def predict_proba(
        self, events: torch.Tensor, mask: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(state_probs [B, S], p_correct [B])``, the outputs the ONNX graph has."""
        state_logits, next_logit = self.logits(events, mask, query)
        return torch.softmax(state_logits, dim=1), torch.sigmoid(next_logit)

    # typed forms of the transformers overrides, so callers stay type-checked
    def eval(self) -> TutorStreamModel:
        """Switch dropout off; returns the model."""
        super().eval()  # type: ignore[no-untyped-call]  # untyped upstream
        return self

    def float(self) -> TutorStreamModel:
        """Cast weights to float32; returns the model."""
        super().float()  # type: ignore[no-untyped-call]  # untyped upstream
        return self

    def half(self) -> TutorStreamModel:
        """Cast weights to float16; returns the model."""
        super().half()  # type: ignore[no-untyped-call]  # untyped upstream
        return self


class ServingGraph(nn.Module):
    """The module exported to ONNX: probabilities out, optionally computed in float16.

    Inputs and outputs stay float32 in both variants so callers never change; the fp16 variant
    casts inside the graph.
    """

    def __init__(self, model: TutorStreamModel, half: bool = False) -> None:
        super().__init__()
        self.model = model.half() if half else model
        self.in_half = half

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, query: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(state_probs, p_correct)`` in float32."""
        if self.in_half:
            events, query = events.half(), query.half()
        state_probs, p_correct = self.model.predict_proba(events, mask, query)
        return state_probs.float(), p_correct.float()


class CandidateGraph(nn.Module):
    """The module exported to score many candidate items per learner with one encoder pass.

    Takes ``events [L, T, F]``, ``mask [L, T]`` and ``queries [L, K, Q]`` (K candidate items per
    learner) and returns ``p_correct [L, K]``: the same next-answer head as the serving graph,
    without running the encoder once per candidate.
    """

    def __init__(self, model: TutorStreamModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, events: torch.Tensor, mask: torch.Tensor, queries: torch.Tensor
    ) -> torch.Tensor:
        """Return ``p_correct [L, K]`` in float32."""
        encoded = self.model.encode(events, mask)
        projected = self.model.query_projection(queries)
        expanded = encoded.unsqueeze(1).expand(-1, queries.shape[1], -1)
        logit = self.model.next_head(torch.cat([expanded, projected], dim=2)).squeeze(2)
        return torch.sigmoid(logit)


class StepGraph(nn.Module):
    """The module exported as ``step.onnx``: learners' carried states through their new events.

    Takes ``events [B, K, F]`` (each learner's new events, first ``lengths`` of ``K`` real),
    ``hidden [B, layers, H]`` (its GRU state before them, zeros for a learner not seen yet),
    ``lengths [B]`` int64 (at least 1), ``query [N, Q]`` and ``rows [N]`` int64 (the events to
    score, as ``b * K + k``); returns ``state_probs [N, S]`` and ``p_correct [N]`` at those
    events, and ``hidden_out [B, layers, H]``, each state after its learner's last real event.

    The GRU encoder runs from a zero state over exactly the real events of a window, so stepping
    a learner's events from zeros gives what the window graph gives while the history fits the
    window. Past it, the state carries every event since the first instead of the last
    ``window``: one recurrent step per event instead of ``window`` per decision. A batch is one
    call, whatever its learners' event counts, and the heads run on the scored events only.
    """

    def __init__(self, model: TutorStreamModel) -> None:
        super().__init__()
        if model.config.encoder != "gru":
            raise ValueError(f"encoder: only a GRU carries its state, not {model.config.encoder!r}")
        encoder = model.encoder
        assert isinstance(encoder, _GRUEncoder)  # checked by the config above
        self.model = model
        self.layers = nn.ModuleList(_single_layers(encoder.gru))

    def forward(
        self,
        events: torch.Tensor,
        hidden: torch.Tensor,
        lengths: torch.Tensor,
        query: torch.Tensor,
        rows: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return ``(state_probs, p_correct, hidden_out)`` in float32."""
        model = self.model
        batch, steps, _ = events.shape
        # the mask channel of a real event is one (see TutorStreamModel.encode); padded steps
        # come after a learner's last event and are never read
        x = torch.cat([events, events.new_ones(batch, steps, 1)], dim=2)
        x = model.event_projection(x)
        last = (lengths - 1).clamp(min=0).view(batch, 1, 1).expand(batch, 1, x.shape[2])
        after = []
        for k, layer in enumerate(self.layers):
            x, _ = layer(x, hidden[:, k].unsqueeze(0).contiguous())
            after.append(torch.gather(x, 1, last).squeeze(1))
        encoded = x.reshape(batch * steps, x.shape[2]).index_select(0, rows)
        state_logits = model.state_head(encoded)
        next_logit = model.next_head(torch.cat([encoded, model.query_projection(query)], dim=1))
        return (
            torch.softmax(state_logits, dim=1),
            torch.sigmoid(next_logit.squeeze(1)),
            torch.stack(after, dim=1),
        )


def _single_layers(gru: nn.GRU) -> list[nn.GRU]:
    """The layers of ``gru`` as one-layer GRUs, so each layer's state can be read at any step."""
    if gru.num_layers == 1:
        return [gru]
    layers = []
    for k in range(gru.num_layers):
        layer = nn.GRU(
            gru.input_size if k == 0 else gru.hidden_size, gru.hidden_size, batch_first=True
        )
        with torch.no_grad():
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(layer, f"{name}_l0").copy_(getattr(gru, f"{name}_l{k}"))
        layers.append(layer)
    return layers


class StateCandidateGraph(nn.Module):
    """The module exported as ``step_candidates.onnx``: candidate items scored from a state.

    Takes ``hidden [L, layers, H]`` (each learner's carried state, its newest event taken) and
    ``queries [L, K, Q]``; returns ``p_correct [L, K]``, what :class:`CandidateGraph` gives
    over a window holding the same events, without running the encoder at all.
    """

    def __init__(self, model: TutorStreamModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, hidden: torch.Tensor, queries: torch.Tensor) -> torch.Tensor:
        """Return ``p_correct [L, K]`` in float32."""
        encoded = hidden[:, -1]  # the top layer's state is its output at the newest event
        projected = self.model.query_projection(queries)
        expanded = encoded.unsqueeze(1).expand(-1, queries.shape[1], -1)
        logit = self.model.next_head(torch.cat([expanded, projected], dim=2)).squeeze(2)
        return torch.sigmoid(logit)
