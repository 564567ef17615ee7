import json
import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inference.features import QUERY_FEATURE_INDEX, FeatureExtractor, LearnerFeatureState
from inference.lab.closed_loop import ClosedLoopConfig, closed_loop
from inference.lab.simulator.columns import EVENT_TYPE_CODE
from inference.policy import (
    REASON_MAX,
    CourseItem,
    CourseMap,
    Mode,
    NextItemPolicy,
    Scorer,
    bkt_scorer,
    looks_mastered,
    window_arrays,
)
from schemas.events import EventType

pytestmark = pytest.mark.unit

SKILLS = ("add", "mul", "pow")


def _course() -> CourseMap:
    return CourseMap(
        items=(
            CourseItem("add-1", ("add",)),
            CourseItem("add-2", ("add",)),
            CourseItem("mul-1", ("mul",)),
            CourseItem("mul-2", ("mul", "add")),
            CourseItem("pow-1", ("pow",)),
            CourseItem("pow-2", ("pow",)),
        ),
        prerequisites={"add": (), "mul": ("add",), "pow": ("mul",)},
    )


def _learner(mastery: dict[str, tuple[float, int, float]]) -> LearnerFeatureState:
    # (estimate, first answers, recent success); the best estimate so far is the current one.
    state = LearnerFeatureState()
    for skill, (m, attempts, recent) in mastery.items():
        stats = state.skill(skill)
        stats[0], stats[1], stats[2], stats[3] = attempts, recent, m, max(m, stats[3])
    return state


class _Answers:
    """Drives a learner's feature state with real answer events through the extractor."""

    def __init__(self) -> None:
        self.state = LearnerFeatureState()
        self.extractor = FeatureExtractor()
        self.t_us = 1_700_000_000_000_000

    def _event(self, kind: EventType, item: CourseItem, correct: int = -1) -> None:
        self.t_us += 20_000_000
        self.extractor.observe(
            self.state, None, EVENT_TYPE_CODE[kind], self.t_us, item.skill_ids, correct,
            None, 1 if kind is EventType.ANSWER_SUBMIT else 0, 20.0, -1, 0, None, -1,
            math.nan, item.item_id,
        )  # fmt: skip

    def answer(self, item: CourseItem, correct: bool) -> None:
        self._event(EventType.PROBLEM_START, item)
        self._event(EventType.ANSWER_SUBMIT, item, int(correct))
        self._event(EventType.PROBLEM_COMPLETE, item)


def _by_item(values: list[float]) -> Scorer:
    # The policy scores every course item in course order.
    def score(query: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        return np.asarray(values[: len(query)], dtype=np.float32)

    return score


FLAT = _by_item([0.9] * 6)


def test_works_on_the_first_skill_whose_prerequisites_are_mastered() -> None:
    policy = NextItemPolicy(_course(), FLAT)
    assert policy.plan(_learner({}))[:2] == ("add", Mode.LEARN)
    add_done = _learner({"add": (0.97, 5, 0.9)})
    assert policy.plan(add_done)[:2] == ("mul", Mode.LEARN)
    assert policy.recommend(add_done, {}).item_id in {"mul-1", "mul-2"}
    # A high estimate from lucky guesses in two answers does not pass the skill.
    lucky = _learner({"add": (0.97, 2, 0.9)})
    assert policy.plan(lucky)[0] == "add"
    # Every skill surely mastered: the one resting on the fewest answers is reviewed.
    everything = _learner({"add": (0.995, 9, 0.9), "mul": (0.999, 4, 0.9), "pow": (0.992, 6, 0.9)})
    rec = policy.recommend(everything, {})
    assert policy.plan(everything)[:2] == ("mul", Mode.REVIEW)
    assert rec.item_id.startswith("mul-") and "review" in rec.reason
    assert "fewest answers" in rec.reason and "4 answers" in rec.reason


def test_review_goes_to_a_doubted_skill_first_then_to_the_least_evidence() -> None:
    policy = NextItemPolicy(_course(), FLAT)
    # All look mastered; mul's estimate is not yet sure, so it is reviewed before the others.
    doubt = _learner({"add": (0.999, 3, 1.0), "mul": (0.97, 7, 0.9), "pow": (0.98, 12, 0.8)})
    assert policy.review_skill(doubt) == "mul"
    rec = policy.recommend(doubt, {})
    assert rec.item_id.startswith("mul-") and "least certain" in rec.reason
    # With every estimate sure, the lowest one no longer decides: add passed on three answers.
    sure = _learner({"add": (0.995, 3, 1.0), "mul": (0.991, 7, 0.9), "pow": (0.999, 12, 0.8)})
    assert policy.review_skill(sure) == "add"
    assert policy.plan(sure)[:2] == ("add", Mode.REVIEW)
    # Among skills with as many answers, the later one in course order, built on the others.
    even = _learner({"add": (0.995, 5, 0.9), "mul": (0.991, 5, 0.9), "pow": (0.999, 5, 0.9)})
    assert policy.review_skill(even) == "pow"
    # The review moves on as the reviewed skill gathers answers.
    sure.skill("add")[0] = 8.0
    assert policy.plan(sure)[:2] == ("mul", Mode.REVIEW)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0.01, 0.999), st.integers(0, 12), st.floats(0.0, 1.0), st.integers(0, 8)
        ),
        min_size=3,
        max_size=3,
    ),
    st.sampled_from([None, "add-1", "mul-2", "pow-1"]),
)
def test_never_recommends_an_item_whose_prerequisites_are_unmastered(
    stats: list[tuple[float, int, float, int]], last: str | None
) -> None:
    state = LearnerFeatureState()
    for skill, (m, attempts, recent, since_gain) in zip(SKILLS, stats, strict=True):
        s = state.skill(skill)
        s[0], s[1], s[2], s[3], s[4] = attempts, recent, m, m, since_gain
    state.cur_item = last
    course = _course()
    scores = [0.9, 0.55, 0.85, 0.65, 0.75, 0.75]
    policy = NextItemPolicy(course, _by_item(scores))
    rec = policy.recommend(state, {})
    item = next(i for i in course.items if i.item_id == rec.item_id)
    mastered = policy.mastered(state, np.asarray(scores))
    assert all(mastered[p] for s in item.skill_ids for p in course.prerequisites[s]), rec.reason
    assert rec.item_id != last, rec.reason
    if not all(mastered.values()):
        # Something is left to learn, and it is what the learner practises (or its prerequisite).
        assert "review" not in rec.reason
    assert "\n" not in rec.reason and rec.item_id in rec.reason


def test_moves_on_from_a_mastered_skill_and_one_slip_does_not_send_the_learner_back() -> None:
    course = _course()
    add_1 = course.items[0]
    policy = NextItemPolicy(course, FLAT)
    learner = _Answers()
    for _ in range(2):
        learner.answer(add_1, True)
    assert policy.plan(learner.state)[0] == "add"
    learner.answer(add_1, True)
    assert looks_mastered(learner.state, "add")
    assert policy.plan(learner.state)[0] == "mul"
    # One wrong answer lowers the estimate below the mastery threshold but not below the
    # threshold to keep it, so the learner goes on with mul.
    learner.answer(add_1, False)
    assert learner.state.skill_view("add").mastery < 0.95
    assert policy.plan(learner.state)[0] == "mul"
    # Repeated misses do send the learner back.
    learner.answer(add_1, False)
    learner.answer(add_1, False)
    assert policy.plan(learner.state)[0] == "add"


def test_a_reason_fits_a_recommendation_record_whatever_the_names() -> None:
    long = "s" * 150
    course = CourseMap(
        items=(CourseItem(f"{long}-1", (long,)), CourseItem(f"{long}-2", (long,))),
        prerequisites={},
    )
    rec = NextItemPolicy(course, _by_item([0.5, 0.6])).recommend(LearnerFeatureState(), {})
    assert len(rec.reason) == REASON_MAX and rec.reason.endswith("…")
    assert rec.reason.startswith(f"{rec.item_id}: practises s")


def test_picks_the_item_closest_to_the_target_with_a_reason() -> None:
    state = _learner({"add": (0.97, 5, 0.9)})
    # pow-1 scores exactly 0.8 but its prerequisite mul is not mastered.
    policy = NextItemPolicy(_course(), _by_item([0.99, 0.99, 0.95, 0.72, 0.8, 0.8]), target=0.8)
    rec = policy.recommend(state, {})
    assert rec.item_id == "mul-2" and rec.predicted_success == pytest.approx(0.72)
    assert rec.candidates == 2
    assert "mul-2" in rec.reason and "80%" in rec.reason and "mul" in rec.reason
    with pytest.raises(ValueError, match="target"):
        NextItemPolicy(_course(), bkt_scorer(), target=1.0)
    with pytest.raises(ValueError, match="keep_threshold"):
        NextItemPolicy(_course(), bkt_scorer(), keep_threshold=0.99)
    with pytest.raises(ValueError, match="scorer"):
        NextItemPolicy(_course(), _by_item([0.5])).recommend(state, {})


def test_does_not_repeat_the_item_just_worked_on() -> None:
    state = _learner({"add": (0.97, 5, 0.9)})
    policy = NextItemPolicy(_course(), _by_item([0.9, 0.9, 0.8, 0.5, 0.2, 0.2]))
    assert policy.recommend(state, {}).item_id == "mul-1"
    state.cur_item = "mul-1"
    assert policy.recommend(state, {}).item_id == "mul-2"


def test_spinning_on_a_skill_brings_its_prerequisite_back() -> None:
    state = _learner({"add": (0.96, 6, 0.8), "mul": (0.2, 8, 0.2)})
    state.skill("mul")[4] = 7.0  # seven answers without a rise in mastery
    policy = NextItemPolicy(_course(), FLAT)
    # The spinning skill is set aside and its not-surely-mastered prerequisite comes back.
    skill, mode, set_aside = policy.plan(state)
    assert (skill, mode, set_aside) == ("add", Mode.REVISIT, ("mul",))
    rec = policy.recommend(state, {})
    assert rec.item_id.startswith("add-") and "prerequisite of mul" in rec.reason
    # With the prerequisite surely mastered there is nothing else, so mul stays.
    state.skill("add")[2] = 0.999
    assert policy.plan(state)[:2] == ("mul", Mode.LEARN)


def test_a_skill_is_mastered_only_when_the_scorer_also_expects_success() -> None:
    course = _course()
    add_done = _learner({"add": (0.97, 5, 0.9)})
    # The estimate says add is mastered, but the scorer still expects failure on add items.
    low_on_add = _by_item([0.3, 0.4, 0.6, 0.65, 0.2, 0.2])
    assert NextItemPolicy(course, low_on_add).recommend(add_done, {}).item_id == "add-2"
    sure_on_add = _by_item([0.9, 0.95, 0.6, 0.75, 0.2, 0.2])
    assert NextItemPolicy(course, sure_on_add).recommend(add_done, {}).item_id == "mul-2"
    # Once mastered, a skill stays so on a lower expectation (one hard day does not undo it).
    slipped = _learner({"add": (0.9, 6, 0.7)})
    slipped.skill("add")[3] = 0.99
    fair_on_add = np.array([0.65, 0.62, 0.6, 0.75, 0.2, 0.2])
    assert NextItemPolicy(course, FLAT).mastered(slipped, fair_on_add)["add"]
    assert not NextItemPolicy(course, FLAT).mastered(slipped, fair_on_add - 0.1)["add"]


def test_bkt_scorer_reads_the_mastery_feature() -> None:
    q = np.zeros((2, len(QUERY_FEATURE_INDEX)), dtype=np.float32)
    q[:, QUERY_FEATURE_INDEX["skill_mastery"]] = [0.0, 1.0]
    np.testing.assert_allclose(bkt_scorer()(q), [0.25, 0.9], rtol=1e-6)


def test_window_arrays_pad_on_the_left() -> None:
    events, mask = window_arrays([[1.0] * 47, [2.0] * 47], 4)
    assert events.shape == (4, 47) and mask.tolist() == [False, False, True, True]
    assert events[3, 0] == 2.0 and events[0, 0] == 0.0


def test_policy_masters_the_curriculum_faster_than_fixed_order_in_closed_loop() -> None:
    config = ClosedLoopConfig(family="irt", n_learners=20, seed=7, max_problems=250)
    report = closed_loop(config, {"oracle": None, "bkt": bkt_scorer()})
    fixed = report.outcome("fixed")
    # With a scorer that knows the learner, mastery learning cuts the time well down.
    oracle = report.outcome("target", "oracle")
    assert oracle.mean_events < 0.8 * fixed.mean_events, report.table()
    assert oracle.mastered_share >= fixed.mastered_share
    # Even knowledge tracing alone, blind to item difficulty, does no worse than the textbook.
    assert report.outcome("target", "bkt").mean_events < fixed.mean_events, report.table()
    assert report.outcome("random").mean_events > fixed.mean_events
    assert {o.policy for o in report.outcomes} == {"fixed", "random", "target", "max_info"}
    data = json.loads(json.dumps(report.to_dict()))
    assert len(data["outcomes"]) == len(report.outcomes)
