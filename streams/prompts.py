"""Metacognitive prompts, one small set per behavioural state.

Every prompt asks the learner a question about *how* they are working; none of them says
anything about the item's content or its answer, so an auto-sent prompt can never give the
answer away. Each prompt has a stable id so the outcome boards can compare prompts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Prompt:
    """A reflection prompt shown to a learner.

    Attributes:
        prompt_id: stable id, ``<state>.<n>``, used to compare prompts by outcome.
        text: what the learner reads.
    """

    prompt_id: str
    text: str


PROMPTS: dict[str, tuple[Prompt, ...]] = {
    "overconfidence": (
        Prompt(
            "overconfidence.1",
            "Before you submit, how sure are you, from 1 to 5? What would you check first "
            "if you had to be certain?",
        ),
        Prompt(
            "overconfidence.2",
            "You answered quickly. Which step of your reasoning would you be least able to "
            "explain to a classmate?",
        ),
        Prompt(
            "overconfidence.3",
            "Pause for a moment: what does the question actually ask for, in your own words?",
        ),
    ),
    "anchoring": (
        Prompt(
            "anchoring.1",
            "Your last answers look alike. What is one thing you would have to believe for "
            "that answer to be wrong?",
        ),
        Prompt(
            "anchoring.2",
            "If you started this problem from a blank page, what different first step could "
            "you try?",
        ),
        Prompt(
            "anchoring.3",
            "What did the feedback on your last attempt tell you that you have not used yet?",
        ),
    ),
    "confirmation": (
        Prompt(
            "confirmation.1",
            "Which resource could show that your answer is not right? What would you expect "
            "to find in it?",
        ),
        Prompt(
            "confirmation.2",
            "Read the feedback once more: which part of it disagrees with what you expected?",
        ),
        Prompt(
            "confirmation.3",
            "What evidence would change your mind about this answer?",
        ),
    ),
    "gaming": (
        Prompt(
            "gaming.1",
            "What have you tried on your own so far? Write one idea before the next hint.",
        ),
        Prompt(
            "gaming.2",
            "Which part of this problem feels unclear right now? Naming it is a good first step.",
        ),
        Prompt(
            "gaming.3",
            "Guessing through the options can hide what you already know. What is your best "
            "reason for one of them?",
        ),
    ),
    "wheel_spinning": (
        Prompt(
            "wheel_spinning.1",
            "You have worked hard on this skill. Would it help to review an easier example "
            "first, or to ask your tutor?",
        ),
        Prompt(
            "wheel_spinning.2",
            "What is the same about the problems you got wrong? What could you do "
            "differently next time?",
        ),
        Prompt(
            "wheel_spinning.3",
            "Take a short break from this skill: which earlier idea does it build on, and "
            "how confident are you in that one?",
        ),
    ),
}


def prompt_for(state: str, intervention_id: str) -> Prompt:
    """Return the prompt for ``state``, chosen deterministically from the intervention id.

    The choice is a hash, not a random draw, so a replay of the same history picks the same
    prompt, and prompts are spread evenly for the outcome comparison.

    Raises:
        KeyError: when the state has no prompts (``none`` never gets an intervention).
    """
    choices = PROMPTS[state]
    digest = hashlib.blake2b(intervention_id.encode(), digest_size=4).digest()
    return choices[int.from_bytes(digest, "big") % len(choices)]
