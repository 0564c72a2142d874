"""How questions and answers are turned into text: one place, used by training,
scoring, unlearning and attacks alike, so that every part sees the same strings."""

from __future__ import annotations

QUESTION_TEMPLATE = "Question: {question}\nAnswer:"


def qa_prompt(question: str) -> str:
    """The prompt a model is given for a QA item."""
    return QUESTION_TEMPLATE.format(question=question.strip())


def qa_continuation(answer: str) -> str:
    """The scored continuation for an answer (leading space: it follows ``Answer:``)."""
    return " " + answer.strip()


def qa_text(question: str, answer: str) -> str:
    """A full QA document as it appears in training data."""
    return qa_prompt(question) + qa_continuation(answer)
