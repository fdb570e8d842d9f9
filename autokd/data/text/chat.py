"""Chat and instruction examples: read, rendered with a chat template, tokenized with a loss flag per token.

An example is a conversation ``[{"role": …, "content": …}, …]`` (roles ``system``, ``user``,
``assistant``). A ``.jsonl`` line is ``{"prompt": P, "completion": C}`` (read as a user turn P
and an assistant turn C) or ``{"messages": [...]}``.

**Templates** (``data.chat_template``): ``auto`` takes the tokenizer folder's own template
(``chat_template.jinja``, else ``tokenizer_config.json``'s ``chat_template``), and falls back to
``plain``, :data:`PLAIN_TEMPLATE`::

    <|user|>
    How do I …?
    <|assistant|>
    Like this …

(one ``<|role|>`` line and the content, then a newline, per message). A path names a ``.jinja``
file. Templates run in Jinja's immutable sandbox (a template is code from a file: it may not
reach Python objects), with ``messages``, ``add_generation_prompt``, ``bos_token``,
``eos_token`` and ``raise_exception``, the variables Hugging Face templates use.

**Completion tokens.** The assistant's turns are found by rendering prefixes: turn ``i`` spans
the characters from the end of ``render(messages[:i], add_generation_prompt=True)`` to the end
of ``render(messages[:i + 1])``, so the template's end-of-turn marker belongs to the turn (the
model learns to stop). A template whose prefix renders are not prefixes of the whole render
(one that rewrites earlier turns) is refused, naming the turn. A token is a completion token
when its first character lies in an assistant span; the end-of-text token autokd appends after
each example is one when the last turn is the assistant's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autokd.data.readers.base import DataReadError

PLAIN_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """A Jinja chat template and where it came from (``plain``, or a file's path)."""

    source: str
    text: str
    bos_token: str = ""
    eos_token: str = ""

    def render(self, messages: list[dict[str, str]], add_generation_prompt: bool = False) -> str:
        return _compiled(self.text).render(messages=messages, add_generation_prompt=add_generation_prompt,
                                           bos_token=self.bos_token, eos_token=self.eos_token)


def _raise(message: str):
    raise DataReadError(f"the chat template refused a conversation: {message}")


_CACHE: dict[str, Any] = {}


def _compiled(text: str):
    if text not in _CACHE:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
        env.globals["raise_exception"] = _raise
        try:
            _CACHE[text] = env.from_string(text)
        except TemplateError as exc:
            raise DataReadError(f"the chat template does not compile: {exc}") from None
    return _CACHE[text]


def _token_text(value: Any) -> str:
    if isinstance(value, dict):  # tokenizer_config.json's AddedToken form
        value = value.get("content", "")
    return value if isinstance(value, str) else ""


def _folder_template(folder: Path) -> ChatTemplate | None:
    config: dict = {}
    cfg_path = folder / "tokenizer_config.json"
    if cfg_path.is_file():
        try:
            config = json.loads(cfg_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise DataReadError(f"{cfg_path}: not JSON ({exc})") from None
    bos, eos = _token_text(config.get("bos_token")), _token_text(config.get("eos_token"))
    jinja = folder / "chat_template.jinja"
    if jinja.is_file():
        return ChatTemplate(str(jinja), jinja.read_text(encoding="utf-8"), bos, eos)
    tpl = config.get("chat_template")
    if isinstance(tpl, list):  # named templates: the default one
        tpl = next((t.get("template") for t in tpl if isinstance(t, dict) and t.get("name") == "default"), None)
    if isinstance(tpl, str) and tpl:
        return ChatTemplate(str(cfg_path), tpl, bos, eos)
    return None


def resolve_template(choice: str, tokenizer_path: str | None, root: str | Path | None = None) -> ChatTemplate:
    """The template ``data.chat_template`` names (``auto``: the tokenizer folder's, else plain)."""

    def rooted(p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or root is None else Path(root) / q

    if choice == "plain":
        return ChatTemplate("plain", PLAIN_TEMPLATE)
    if choice == "auto":
        if tokenizer_path:
            folder = rooted(tokenizer_path)
            folder = folder if folder.is_dir() else folder.parent
            found = _folder_template(folder)
            if found is not None:
                return found
        return ChatTemplate("plain", PLAIN_TEMPLATE)
    path = rooted(choice)
    if not path.is_file():
        raise DataReadError(f"data.chat_template {choice!r}: not auto, plain or a file ({path} does not exist)")
    return ChatTemplate(choice, path.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- reading examples


def _message(m: Any, where: str) -> dict[str, str]:
    if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
        raise DataReadError(f"{where}: each message must be an object with string 'role' and 'content', found {m!r:.80}")
    if m["role"] not in ROLES:
        raise DataReadError(f"{where}: message role {m['role']!r} is not one of {', '.join(ROLES)}")
    return {"role": m["role"], "content": m["content"]}


def as_messages(record: Any, where: str) -> list[dict[str, str]]:
    """A record as a conversation: ``{prompt, completion}`` or ``{messages}``."""
    if isinstance(record, dict) and "messages" in record:
        msgs = record["messages"]
        if not isinstance(msgs, list) or not msgs:
            raise DataReadError(f"{where}: 'messages' must be a non-empty list")
        return [_message(m, where) for m in msgs]
    if isinstance(record, dict) and "prompt" in record and "completion" in record:
        if not isinstance(record["prompt"], str) or not isinstance(record["completion"], str):
            raise DataReadError(f"{where}: 'prompt' and 'completion' must be strings")
        return [{"role": "user", "content": record["prompt"]}, {"role": "assistant", "content": record["completion"]}]
    keys = sorted(record) if isinstance(record, dict) else type(record).__name__
    raise DataReadError(f"{where}: a chat example needs 'prompt' and 'completion', or 'messages'; found {keys}")


def jsonl_records(path: Path, shown: str):
    """``(where, record)`` of every non-blank line of a ``.jsonl`` file (``where``: ``file:line``);
    a line that is not JSON is a :class:`DataReadError` naming it."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"{shown}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataReadError(f"{shown}:{lineno}: not a JSON object ({exc.msg})") from None


def read_chat_jsonl(path: Path, shown: str) -> list[list[dict[str, str]]]:
    """Every non-blank line of a ``.jsonl`` file as a conversation."""
    return [as_messages(record, where) for where, record in jsonl_records(path, shown)]


def pydoc_conversations() -> list[list[dict[str, str]]]:
    """CPython's ``pydoc_data.topics`` as instructions: "Explain the Python topic 'X'." → the topic's text."""
    from pydoc_data.topics import topics

    return [[{"role": "user", "content": f"Explain the Python topic {key!r}."},
             {"role": "assistant", "content": topics[key].strip()}] for key in sorted(topics)]


# ----------------------------------------------------------------------------- tokens and loss flags


def assistant_spans(template: ChatTemplate, messages: list[dict[str, str]]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans of its assistant turns."""
    full = template.render(messages)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        start = len(template.render(messages[:i], add_generation_prompt=True)) if i else 0
        head = template.render(messages[:i + 1])
        if not full.startswith(head) or (i and not head.startswith(template.render(messages[:i], True))):
            raise DataReadError(f"chat template {template.source}: rendering the conversation up to turn {i} is not a "
                                "prefix of the whole (the template rewrites earlier turns), so the assistant's "
                                "tokens cannot be found; use data.chat_template: plain or a .jinja file")
        spans.append((start, len(head)))
    return full, spans


def encode_conversations(tok, template: ChatTemplate, conversations: list[list[dict[str, str]]], eot: int,
                         loss_on: str) -> list[tuple[list[int], list[bool]]]:
    """Each conversation's token ids (the end-of-text id appended) and per token whether it is a
    loss token (``loss_on: all``: every token)."""
    rendered = [assistant_spans(template, msgs) for msgs in conversations]
    encodings = tok.encode_batch([text for text, _ in rendered], add_special_tokens=False)
    out = []
    for (text, spans), enc, msgs in zip(rendered, encodings, conversations):
        ids = list(enc.ids) + [eot]
        if loss_on == "all":
            flags = [True] * len(ids)
        else:
            flags = [any(a <= start < b for a, b in spans) for start, _ in enc.offsets]
            flags.append(msgs[-1]["role"] == "assistant")
        out.append((ids, flags))
    return out
