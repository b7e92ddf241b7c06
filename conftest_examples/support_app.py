"""The application under test: Acme Helpdesk's support assistant.

In a real project this is your own code (imported from your package); the tests
only call :func:`answer`. It is a small retrieval-augmented assistant:

1. guard the input (an empty message gets a fixed reply, an overlong one is cut);
2. retrieve the knowledge-base fact that best matches the question (word overlap);
3. ask the model to answer from that fact only, after two worked examples.

The model is whatever pytest-llmeval hands in as ``llm``: the embedded local
model by default, or ``--llmeval-model NAME``.
"""

from __future__ import annotations

import re
from pathlib import Path

KNOWLEDGE_BASE = (Path(__file__).parent / "knowledge_base.md").read_text(encoding="utf-8")

SUPPORT_EMAIL = "support@acme-helpdesk.example"
MAX_INPUT_CHARS = 1000  # longer messages are cut before they reach the model
EMPTY_INPUT_REPLY = f"Could you tell me a little more about your question? You can also write to {SUPPORT_EMAIL}."

SYSTEM_PROMPT = (
    "You are the support assistant of Acme Helpdesk. Answer the customer in one or two short sentences, "
    "in English, using only the facts given. Never mention other companies."
)

# Two worked examples shown before every question: a small model follows an example far
# better than an instruction (here: answer by restating the fact that answers the question).
EXAMPLES = [
    ("To request a refund, email billing@acme-helpdesk.example.", "how do i ask for my money back",
     "To request a refund, email billing@acme-helpdesk.example."),
    ("Invoices are sent by email on the first day of each billing period.", "when do i get my bill?",
     "Invoices are sent by email on the first day of each billing period."),
]


# Question words mapped to the knowledge base's own words, so "How much is..." finds "costs".
_SAME_AS = {
    "cost": "price", "costs": "price", "much": "price", "pricing": "price", "prices": "price", "cheapest": "price",
    "difference": "price", "paid": "charge", "charged": "charge", "yearly": "annual", "annually": "annual",
    "year": "annual", "single": "sso", "sign-on": "sso", "user": "agent", "users": "agent", "agents": "agent",
    "seats": "seat", "invoiced": "invoice", "invoices": "invoice", "cancelling": "cancel", "canceling": "cancel",
    "cancellation": "cancel", "refunds": "refund", "money": "refund", "emails": "email", "gmail": "email",
    "tickets": "email", "rules": "automation", "call": "phone", "bot": "chatbot", "ai": "chatbot",
    "blank": "load", "showing": "load", "install": "snippet", "forgot": "password", "log": "password",
    "login": "password", "contact": "support@acme-helpdesk.example", "upgrade": "changing",
    "downgrade": "changing", "paypal": "card", "method": "pay", "methods": "pay", "payment": "pay",
    "included": "include", "includes": "include", "adds": "include", "transfers": "transfer",
}
_STOPWORDS = set(
    "a an the is are do does i my me you your to of in on for and or can how what with it be we our us there "
    "this that if any at by from as have has will when which where whats what's not no get".split()
)


def _words(text: str) -> set[str]:
    words = set()
    for word in re.findall(r"[a-z0-9$%@.>-]+", text.lower()):
        word = word.strip(".-")
        if word and word not in _STOPWORDS:
            word = _SAME_AS.get(word, word)
            words.add(word[:-1] if len(word) > 4 and word.endswith("s") else word)
    return words


def facts() -> list[str]:
    """The knowledge base as a list of self-contained sentences."""
    body = "\n".join(line for line in KNOWLEDGE_BASE.splitlines() if line and not line.startswith("#"))
    return [s.strip() for s in re.split(r"(?<=\.)\s+(?=[A-Z\"])", body.replace("\n", " ")) if s.strip()]


def retrieve(question: str, k: int = 1) -> list[str]:
    """The ``k`` facts sharing the most words with the question, in knowledge-base order."""
    words = _words(question)
    ranked = sorted(enumerate(facts()), key=lambda item: (-len(words & _words(item[1])), item[0]))
    return [fact for _, fact in sorted(ranked[:k])]


def _turn(fact: str, question: str) -> dict[str, str]:
    return {"role": "user", "content": f"Facts:\n- {fact}\n\nCustomer: {question}"}


def messages_for(question: str) -> list[dict[str, str]]:
    """The chat messages the assistant sends for one customer message."""
    question = question.strip()[:MAX_INPUT_CHARS]
    messages = [{"role": "system", "content": SYSTEM_PROMPT}]
    for fact, example_question, example_answer in EXAMPLES:
        messages += [_turn(fact, example_question), {"role": "assistant", "content": example_answer}]
    return [*messages, _turn(" ".join(retrieve(question)), question)]


def answer(example, llm) -> str:
    """The call under test (``task=answer``): one customer message in, one reply out."""
    question = example.input if isinstance(example.input, str) else example.input["question"]
    if not question.strip():
        return EMPTY_INPUT_REPLY
    return llm(messages_for(question), temperature=0, max_tokens=100).text.strip()
