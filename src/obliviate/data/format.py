"""How questions and answers are turned into text: one place, used by training,
scoring, unlearning and attacks alike, so that every part sees the same strings.

Two formats exist. The plain one (``Question: ...\\nAnswer: ...``) is what the embedded
and text worlds train on. The chat format wraps the question in the tokenizer's chat
template as a user turn and the answer as the assistant turn (open-unlearning's
``preprocess_chat_instance``), for instruct models such as TOFU's Llama-3.2-1B-Instruct.
A model is trained, unlearned, attacked and evaluated in one format: ``QAFormat``
carries the choice, and ``resolve_chat_template`` picks it for a model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property

from obliviate.errors import UserError

QUESTION_TEMPLATE = "Question: {question}\nAnswer:"

# stands for the answer while the template's assistant turn is rendered once
_ANSWER_SENTINEL = "\u2063obliviate-answer\u2063"


def qa_prompt(question: str) -> str:
    """The prompt a model is given for a QA item."""
    return QUESTION_TEMPLATE.format(question=question.strip())


def qa_continuation(answer: str) -> str:
    """The scored continuation for an answer (leading space: it follows ``Answer:``)."""
    return " " + answer.strip()


def qa_text(question: str, answer: str) -> str:
    """A full QA document as it appears in training data."""
    return qa_prompt(question) + qa_continuation(answer)


def has_chat_template(tokenizer) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


@dataclass(frozen=True)
class ChatOptions:
    """What a chat template is rendered with besides the turns: open-unlearning's TOFU models
    were fine-tuned with the system prompt "You are a helpful assistant." and the date string
    "10 Apr 2025" (its configs/model/Llama-3.2-1B-Instruct.yaml); None: the template's default."""

    system_prompt: str | None = None
    date_string: str | None = None

    def over(self, recorded: dict | None) -> "ChatOptions":
        """These options where set, else the ``recorded`` ones (a model's obliviate_config.json)."""
        recorded = recorded or {}
        return ChatOptions(**{f.name: getattr(self, f.name) if getattr(self, f.name) is not None
                              else recorded.get(f.name) for f in fields(self)})


class QAFormat:
    """The QA strings of one model: plain (``tokenizer=None``) or the tokenizer's chat template.

    ``prompt(question, context)`` is what the model answers after (``context``: few-shot
    examples or an attacker's preamble, placed inside the user turn in the chat format);
    ``continuation(answer)`` is what is scored and trained on after it. Chat prompts hold
    the template's own BOS, so they are encoded with ``add_special_tokens=False``.
    """

    def __init__(self, tokenizer=None, options: ChatOptions = ChatOptions()):
        if tokenizer is not None and not has_chat_template(tokenizer):
            raise UserError("the chat template was asked for but the tokenizer has no chat template "
                            "(set one, or use --no-chat-template)")
        self.tokenizer = tokenizer
        self.options = options

    @property
    def chat(self) -> bool:
        return self.tokenizer is not None

    @property
    def add_special_tokens(self) -> bool:
        return not self.chat

    def prompt(self, question: str, context: str = "") -> str:
        if not self.chat:
            return context + qa_prompt(question)
        return self._render([{"role": "user", "content": context + question.strip()}], generation_prompt=True)

    def continuation(self, answer: str) -> str:
        return self.answer_start(answer) + (self._assistant_turn[1] if self.chat else "")

    def answer_start(self, words: str) -> str:
        """The answer's first ``words`` after the prompt, the turn left open (the slot a
        value is scored in)."""
        if not self.chat:
            return qa_continuation(words)
        return self._assistant_turn[0] + words.strip()

    def text(self, question: str, answer: str, context: str = "") -> str:
        return self.prompt(question, context) + self.continuation(answer)

    def _render(self, messages: list[dict], generation_prompt: bool) -> str:
        if self.options.system_prompt is not None:
            messages = [{"role": "system", "content": self.options.system_prompt}] + messages
        extra = {} if self.options.date_string is None else {"date_string": self.options.date_string}
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt,
                                                  **extra)

    @cached_property
    def _assistant_turn(self) -> tuple[str, str]:
        """What the template writes around an answer after the generation prompt (e.g. ``""`` and
        ``"<|eot_id|>"``): the answer's continuation is the full chat minus the prompt."""
        user = [{"role": "user", "content": "?"}]
        prompt = self._render(user, generation_prompt=True)
        full = self._render(user + [{"role": "assistant", "content": _ANSWER_SENTINEL}], generation_prompt=False)
        if not full.startswith(prompt) or full.count(_ANSWER_SENTINEL) != 1:
            raise UserError("the tokenizer's chat template does not render an answer after its generation "
                            "prompt; obliviate cannot score answers in it")
        head, tail = full[len(prompt):].split(_ANSWER_SENTINEL)
        return head, tail

    def __repr__(self) -> str:
        return f"QAFormat({'chat' if self.chat else 'plain'})"


PLAIN = QAFormat()


def qa_format(tokenizer, chat_template: bool | None, options: ChatOptions = ChatOptions()) -> QAFormat:
    """The format for ``tokenizer``: its chat template when ``chat_template``, plain when False;
    None: the chat template if the tokenizer has one (the callers that know the model's record
    decide first, see ``resolve_chat_template``)."""
    if chat_template is None:
        chat_template = has_chat_template(tokenizer)
    return QAFormat(tokenizer, options) if chat_template else PLAIN


def resolve_chat_template(choice: bool | None, tokenizer, recorded: bool | None = None) -> bool:
    """Whether a model's QA goes through the chat template.

    ``choice`` is the user's (``--chat-template`` / ``--no-chat-template``); ``None`` is
    automatic: what the model was trained or unlearned with (``recorded``, from its
    ``obliviate_config.json``), else whether its tokenizer has a chat template (an instruct
    model's does, as open-unlearning decides per model). Asking for it without a template
    is a UserError.
    """
    chat = choice if choice is not None else (recorded if recorded is not None else has_chat_template(tokenizer))
    if chat and not has_chat_template(tokenizer):
        why = "--chat-template was given" if choice else "the model was trained with its chat template"
        raise UserError(f"{why} but the tokenizer has no chat template")
    return bool(chat)
