"""The HTTP API's JSON shapes and the checks a request must pass.

``check_request`` runs before BentoML sees a request (see :mod:`guard`), so a
client's mistake gets a 4xx naming the field and the limit, and never reaches a
code path that would log an ERROR traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pydantic import BaseModel, Field

from earful.models.tokenization import replace_lone_surrogates
from earful.schema import lang_hint


class Post(BaseModel):
    text: str = Field(description="The post's text.")
    id: str | None = Field(default=None, description="Your id for the post, echoed back.")
    lang: str | None = Field(
        default=None,
        description="Optional ISO 639-1 language hint (case-insensitive); reported as the language when given.",
    )


class LabelScores(BaseModel):
    label: str | None = Field(
        description="The most probable label; null for empty posts and for a head the model "
        "was not trained for (then probabilities is empty)."
    )
    probabilities: dict[str, float] = Field(description="Calibrated probability per label.")


class Language(BaseModel):
    code: str = Field(description="ISO 639-1 code, or 'und' when no language can be told.")
    confidence: float
    source: str = Field(description="model | langdetect | hint | rule")


class PostResult(BaseModel):
    id: str | None
    complaint_type: LabelScores
    sentiment: LabelScores
    troll: float | None = Field(
        description="Calibrated probability that the post is trolling; null for empty posts and "
        "when the model's troll head is untrained."
    )
    is_troll: bool | None = Field(
        description="The troll probability reached the model's decision threshold (chosen on "
        "validation data, see the model card); null where troll is."
    )
    lang: Language
    truncated: bool = Field(description="The post exceeded the model's input length; only its start was read.")
    n_tokens: int
    status: str = Field(description="ok, or empty (nothing to classify)")


class ModelInfo(BaseModel):
    name: str
    version: str


class ClassifyResponse(BaseModel):
    results: list[PostResult] = Field(description="One result per post, in request order.")
    model: ModelInfo


@dataclass(frozen=True)
class ClientError(Exception):
    status: int
    message: str


@dataclass(frozen=True)
class CheckedRequest:
    """A valid /classify body: its post count, and the body BentoML is to read (repaired where needed)."""

    posts: int
    body: bytes


def check_request(body: bytes, max_posts: int, max_chars: int) -> CheckedRequest:
    """Check a /classify body before BentoML sees it; :class:`ClientError` for anything a well-behaved client would
    not send. Language hints come back lower-cased, and a text's lone surrogates (a cut emoji, which BentoML's JSON
    parser refuses with the body in its error) as U+FFFD, so what reaches BentoML always parses."""
    if not body.strip():
        raise ClientError(400, 'empty body: send JSON like {"posts": [{"text": "..."}]}')
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ClientError(400, f"body is not valid UTF-8 (byte {e.start})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClientError(400, f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise ClientError(400, 'JSON nested too deeply; send {"posts": [{"text": "..."}]}') from None
    if not isinstance(data, dict) or "posts" not in data:
        raise ClientError(400, 'the body must be a JSON object with a "posts" list')
    posts = data["posts"]
    if not isinstance(posts, list):
        raise ClientError(400, f"posts: must be a list of posts, got {type(posts).__name__}")
    if not posts:
        raise ClientError(400, "posts: empty list; send at least one post")
    if len(posts) > max_posts:
        raise ClientError(413, f"posts: {len(posts)} posts, the limit is {max_posts} per request")
    changed = False
    for i, post in enumerate(posts):
        if not isinstance(post, dict):
            raise ClientError(400, f"posts[{i}]: must be an object with a text field")
        unknown = set(post) - {"text", "id", "lang"}
        if unknown:
            raise ClientError(400, f"posts[{i}]: unknown field(s) {sorted(unknown)}")
        t = post.get("text")
        if not isinstance(t, str):
            kind = "missing" if "text" not in post else f"{'null' if t is None else type(t).__name__}, not a string"
            raise ClientError(400, f"posts[{i}].text: {kind}")
        if len(t) > max_chars:
            raise ClientError(413, f"posts[{i}].text: {len(t)} characters, the limit is {max_chars}")
        for field in ("id", "lang"):
            v = post.get(field)
            if v is not None and not isinstance(v, str):
                raise ClientError(400, f"posts[{i}].{field}: must be a string")
        if post.get("id") is not None and replace_lone_surrogates(post["id"]) != post["id"]:
            raise ClientError(400, f"posts[{i}].id: holds a lone surrogate (half of an emoji); send a valid string")
        if post.get("lang") is not None:
            try:
                code = lang_hint(post["lang"])
            except ValueError as e:
                raise ClientError(400, f"posts[{i}].lang: {e}") from None
            changed |= code != post["lang"]
            post["lang"] = code
        clean = replace_lone_surrogates(t)
        changed |= clean != t
        post["text"] = clean
    return CheckedRequest(len(posts), json.dumps(data, ensure_ascii=False).encode() if changed else body)
