"""Block Kit for reviews: the request message, the answer form (modal), the answered message.

Pure functions, no I/O. Slack's limits are kept here (and checked by the test stand-in): section text
3000 characters, header 150, button text 75 and value 2000, option text 75 and value 150, at most
25 elements per actions block, modal title 24, private_metadata 3000.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote, urlencode

from contextgraph.ingest.mapping import SLACK_IDENTITY_KEY

SECTION_TEXT_LIMIT = 3000
HEADER_LIMIT = 150
BUTTON_TEXT_LIMIT = 75
BUTTON_VALUE_LIMIT = 2000
OPTION_TEXT_LIMIT = 75
ACTIONS_PER_BLOCK = 25
PRIVATE_METADATA_LIMIT = 3000

#: action_id prefixes and ids the interaction app recognises.
OPTION_ACTION = "contextgraph_hitl_option"
SELECT_ACTION = "contextgraph_hitl_select"
ANSWER_ACTION = "contextgraph_hitl_answer"
ANSWER_VIEW = "contextgraph_hitl_answer"
OPTIONS_BLOCK = "contextgraph_options"
PARAM_BLOCK_PREFIX = "param:"
VALUE_ACTION = "value"


def _q(value: str) -> str:
    return quote(value, safe="")


def _plausible_id(value: str) -> bool:
    """An id Airflow could have made: not a path step ("." / ".."), no control characters, not huge."""
    return value not in (".", "..") and len(value) <= 250 and value.isprintable()


@dataclass(frozen=True)
class HITLRef:
    """Which HITL task instance a message, button or form is about."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    def api_path(self) -> str:
        return (
            f"/api/v2/dags/{_q(self.dag_id)}/dagRuns/{_q(self.run_id)}/taskInstances/{_q(self.task_id)}"
            f"/{self.map_index}/hitlDetails"
        )

    def ui_url(self, base_url: str) -> str:
        """The task's "required actions" page in the Airflow UI (where the full text is)."""
        url = (
            f"{base_url.rstrip('/')}/dags/{_q(self.dag_id)}/runs/{_q(self.run_id)}"
            f"/tasks/{_q(self.task_id)}/required_actions"
        )
        return f"{url}?{urlencode({'map_index': self.map_index})}" if self.map_index >= 0 else url

    def label(self) -> str:
        index = f"[{self.map_index}]" if self.map_index >= 0 else ""
        return f"{self.dag_id}/{self.run_id}/{self.task_id}{index}"

    @classmethod
    def parse(cls, data: Any) -> HITLRef:
        """From a button value or form metadata; `ValueError` if it is not one of ours."""
        if not isinstance(data, dict):
            raise ValueError("not an object")
        ids = [data.get(k) for k in ("dag_id", "run_id", "task_id")]
        map_index = data.get("map_index", -1)
        if (
            not all(isinstance(i, str) and i for i in ids)
            or not isinstance(map_index, int)
            or isinstance(map_index, bool)
        ):
            raise ValueError("dag_id, run_id, task_id and map_index are required")
        if any(not _plausible_id(str(i)) for i in ids) or not -1 <= map_index < 2**31:
            raise ValueError("not an Airflow task instance")
        return cls(ids[0], ids[1], ids[2], map_index)  # type: ignore[arg-type]


def button_value(
    ref: HITLRef, option: str | None, index: int | None = None, *, reviewer_key: bool = True
) -> str:
    """What a button carries: the task instance, the option (its index if the label is too long) and
    whether the answer may carry the reviewer key (see `contextgraph.slack.operator`)."""
    data: dict[str, Any] = {**asdict(ref), "reviewer_key": reviewer_key}
    if option is not None:
        data["option"] = option
    value = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(value) > BUTTON_VALUE_LIMIT and index is not None:
        data.pop("option")
        data["option_index"] = index
        value = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(value) > BUTTON_VALUE_LIMIT:
        raise ValueError(f"the ids of {ref.label()} are too long for a Slack button ({len(value)} chars)")
    return value


# --- text ----------------------------------------------------------------------------------------


def escape(text: str) -> str:
    """Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int) -> str:
    """Plain text cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


_CODE = re.compile(r"(```.*?```|`[^`\n]+`)", re.S)
_BOLD = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*|__(?=\S)(.+?)(?<=\S)__")
_ITALIC = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\((\S+?)(?:\s+&quot;[^)]*&quot;)?\)")
_HEADING = re.compile(r"^[ ]{0,3}#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
_BULLET = re.compile(r"^([ \t]*)[-*+][ \t]+", re.M)
_RULE = re.compile(r"^[ ]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$", re.M)
_BOLD_MARK = "\x00"


def markdown_to_mrkdwn(text: str) -> str:
    """CommonMark-ish text (what HITL bodies are written in) as Slack mrkdwn.

    ``**b**``/``__b__`` → ``*b*``, ``*i*`` → ``_i_``, ``~~s~~`` → ``~s~``, ``[t](url)`` → ``<url|t>``,
    headings → bold lines, list markers → bullets; code spans and blocks are kept as they are;
    ``&``, ``<`` and ``>`` are escaped.
    """
    parts = _CODE.split(text)
    out = []
    for i, part in enumerate(parts):
        if i % 2:  # code: Slack renders ``` and ` the same way
            out.append(part.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))
            continue
        part = escape(part)
        part = _RULE.sub("──────────", part)
        part = _HEADING.sub(lambda m: f"{_BOLD_MARK}{m.group(1)}{_BOLD_MARK}", part)
        part = _BOLD.sub(lambda m: f"{_BOLD_MARK}{m.group(1) or m.group(2)}{_BOLD_MARK}", part)
        part = _BULLET.sub(lambda m: f"{m.group(1)}• ", part)
        part = _ITALIC.sub(r"_\1_", part)
        part = _STRIKE.sub(r"~\1~", part)
        part = _LINK.sub(lambda m: f"<{m.group(2)}|{m.group(1) or m.group(2)}>", part)
        out.append(part.replace(_BOLD_MARK, "*"))
    return "".join(out)


def cut(text: str, limit: int, more: str) -> str:
    """`text` if it fits in `limit`, else its start (at a line or word end) followed by `more`."""
    if len(text) <= limit:
        return text
    room = limit - len(more) - 6
    head = text[:room]
    for sep in ("\n", " "):
        at = head.rfind(sep)
        if at > room * 0.7:
            head = head[:at]
            break
    # Do not leave a link (<url|text>) or an entity (&amp;) cut in half, or a code block open.
    if head.rfind("<") > head.rfind(">"):
        head = head[: head.rfind("<")]
    if head.rfind("&") > head.rfind(";"):
        head = head[: head.rfind("&")]
    head = head.rstrip() + " …"
    if head.count("```") % 2:
        head += "\n```"
    return f"{head}\n{more}"


# --- messages ------------------------------------------------------------------------------------


@dataclass
class Review:
    """What a review message shows; built from the HITL operator (notifier) or a HITL detail (app)."""

    ref: HITLRef
    subject: str
    body: str | None
    options: list[str]
    multiple: bool = False
    defaults: list[str] | None = None
    timeout_note: str | None = None
    accepts_reviewer: bool = True

    @classmethod
    def from_detail(cls, ref: HITLRef, detail: Mapping[str, Any]) -> Review:
        return cls(
            ref=ref,
            subject=str(detail.get("subject") or ""),
            body=detail.get("body") if isinstance(detail.get("body"), str) else None,
            options=[str(o) for o in detail.get("options") or []],
            multiple=bool(detail.get("multiple")),
            defaults=[str(o) for o in detail.get("defaults") or []] or None,
        )


def _header(review: Review) -> dict[str, Any]:
    return {"type": "header", "text": {"type": "plain_text", "text": plain(review.subject or "Review", 150)}}


def _body(review: Review, ui_url: str) -> list[dict[str, Any]]:
    if not review.body or not review.body.strip():
        return []
    more = f"<{review.ref.ui_url(ui_url)}|Read the full text in Airflow>"
    text = cut(markdown_to_mrkdwn(review.body.strip()), SECTION_TEXT_LIMIT, more)
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def _context(review: Review, ui_url: str, extra: str | None = None) -> dict[str, Any]:
    ref = review.ref
    index = f" · map index `{ref.map_index}`" if ref.map_index >= 0 else ""
    line = (
        f"DAG `{escape(ref.dag_id)}` · run `{escape(ref.run_id)}` · task `{escape(ref.task_id)}`{index}"
        f" · <{ref.ui_url(ui_url)}|Open in Airflow>"
    )
    elements = [{"type": "mrkdwn", "text": line}]
    if extra:
        elements.append({"type": "mrkdwn", "text": extra})
    return {"type": "context", "elements": elements}


def _option_element(index: int, option: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": plain(option, OPTION_TEXT_LIMIT)}, "value": str(index)}


def _actions(review: Review) -> list[dict[str, Any]]:
    ref = review.ref
    if review.multiple:
        select: dict[str, Any] = {
            "type": "multi_static_select",
            "action_id": SELECT_ACTION,
            "placeholder": {"type": "plain_text", "text": "Choose one or more"},
            "options": [_option_element(i, o) for i, o in enumerate(review.options[:100])],
        }
        initial = [
            _option_element(i, o) for i, o in enumerate(review.options) if o in (review.defaults or [])
        ]
        if initial:
            select["initial_options"] = initial
        answer = {
            "type": "button",
            "action_id": ANSWER_ACTION,
            "text": {"type": "plain_text", "text": "Answer…"},
            "style": "primary",
            "value": button_value(ref, None, reviewer_key=review.accepts_reviewer),
        }
        return [{"type": "actions", "block_id": "contextgraph_review", "elements": [select, answer]}]
    buttons = [
        {
            "type": "button",
            "action_id": f"{OPTION_ACTION}_{i}",
            "text": {"type": "plain_text", "text": plain(option, BUTTON_TEXT_LIMIT)},
            "value": button_value(ref, option, i, reviewer_key=review.accepts_reviewer),
        }
        for i, option in enumerate(review.options)
    ]
    return [
        {
            "type": "actions",
            "block_id": f"contextgraph_review_{n}",
            "elements": buttons[s : s + ACTIONS_PER_BLOCK],
        }
        for n, s in enumerate(range(0, len(buttons), ACTIONS_PER_BLOCK))
    ]


def review_message(review: Review, ui_url: str) -> dict[str, Any]:
    """`text` and `blocks` of the message that asks for a review."""
    notes = []
    if review.defaults:
        notes.append(f"Default: *{escape(', '.join(review.defaults))}*")
    if review.timeout_note:
        notes.append(escape(review.timeout_note))
    return {
        "text": f"Review requested: {plain(review.subject, 300)}",
        "blocks": [
            _header(review),
            *_body(review, ui_url),
            *_actions(review),
            _context(review, ui_url, " · ".join(notes) or None),
        ],
    }


def reviewer_mention(reviewer: Mapping[str, Any] | None) -> str:
    if reviewer and reviewer.get("user_id"):
        return f"<@{reviewer['user_id']}>"
    return "someone"


def responder_text(detail: Mapping[str, Any]) -> str:
    """Who answered a HITL detail, as mrkdwn: the Slack user if the bridge answered, else Airflow's."""
    params = detail.get("params_input") or {}
    reviewer = params.get(SLACK_IDENTITY_KEY) if isinstance(params, dict) else None
    if isinstance(reviewer, dict) and reviewer.get("user_id"):
        return reviewer_mention(reviewer)
    user = detail.get("responded_by_user") or detail.get("responded_by")
    if isinstance(user, dict) and (user.get("name") or user.get("id")):
        return f"{escape(str(user.get('name') or user.get('id')))} (in Airflow)"
    return "the review timeout (default)" if detail.get("response_received") else "nobody"


def answered_message(
    review: Review, ui_url: str, detail: Mapping[str, Any], *, note: str | None = None
) -> dict[str, Any]:
    """The review message once answered: the buttons give way to who chose what, and why."""
    chosen = ", ".join(str(c) for c in detail.get("chosen_options") or []) or "(nothing)"
    params = {
        k: v
        for k, v in (detail.get("params_input") or {}).items()
        if k != SLACK_IDENTITY_KEY and v not in (None, "")
    }
    lines = [f":white_check_mark: {responder_text(detail)} chose *{escape(chosen)}*"]
    if note:
        lines.insert(0, f":information_source: {escape(note)}")
    for key, value in params.items():
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        lines.append(f"*{escape(key)}:* {escape(shown)}")
    answer = cut(
        "\n".join(lines), SECTION_TEXT_LIMIT, f"<{review.ref.ui_url(ui_url)}|Full answer in Airflow>"
    )
    return {
        "text": f"Answered: {plain(review.subject, 200)} → {chosen}",
        "blocks": [
            _header(review),
            *_body(review, ui_url),
            {"type": "section", "text": {"type": "mrkdwn", "text": answer}},
            _context(review, ui_url),
        ],
    }


def failed_message(
    review: Review, ui_url: str, reviewer: Mapping[str, Any], chosen: Sequence[str], why: str
) -> dict[str, Any]:
    """The review message after an answer could not be delivered: it still asks, and says why."""
    message = review_message(review, ui_url)
    warning = (
        f":warning: {reviewer_mention(reviewer)}'s answer (*{escape(', '.join(chosen))}*) did not reach "
        f"Airflow: {escape(why)}. Nothing was recorded — answer again, "
        f"or <{review.ref.ui_url(ui_url)}|in Airflow>."
    )
    message["blocks"].insert(
        -1, {"type": "section", "text": {"type": "mrkdwn", "text": plain(warning, 3000)}}
    )
    return message


# --- the answer form -----------------------------------------------------------------------------


def _types(schema: Mapping[str, Any]) -> list[str]:
    kind = schema.get("type")
    if isinstance(kind, str):
        return [kind]
    return [t for t in kind or [] if isinstance(t, str)]


def param_is_required(spec: Mapping[str, Any]) -> bool:
    """A form field the reviewer must fill: its schema allows no null and no empty text."""
    schema = spec.get("schema") or {}
    types = _types(schema)
    if "null" in types or not types:
        return False
    if types == ["string"] and not schema.get("enum"):
        return int(schema.get("minLength") or 0) > 0
    return True


def _label(key: str, spec: Mapping[str, Any]) -> str:
    schema = spec.get("schema") or {}
    return plain(str(schema.get("title") or key.replace("_", " ").capitalize()), 2000)


def _choice(value: Any, text: str | None = None) -> dict[str, Any]:
    label = text if text is not None else str(value)
    return {"text": {"type": "plain_text", "text": plain(label, 75)}, "value": json.dumps(value)[:150]}


def _param_element(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The Block Kit element for one HITL param, its default pre-filled.

    enum → static_select; boolean → Yes/No radio buttons (so *No* is an answer a required field
    accepts); integer/number → number_input; an array of enum items → multi_static_select; other
    arrays and objects → JSON text; strings → text. A `["null", …]` union is the same element,
    optional, and an empty field means null.
    """
    schema = spec.get("schema") or {}
    types = [t for t in _types(schema) if t != "null"]
    default = spec.get("value")
    if schema.get("enum"):
        choices = [c for c in schema["enum"] if c is not None]
        element: dict[str, Any] = {
            "type": "static_select",
            "action_id": VALUE_ACTION,
            "options": [_choice(c) for c in choices[:100]],
        }
        if default in choices[:100]:
            element["initial_option"] = element["options"][choices.index(default)]
        return element
    if types == ["boolean"]:
        yes, no = _choice(True, "Yes"), _choice(False, "No")
        element = {"type": "radio_buttons", "action_id": VALUE_ACTION, "options": [yes, no]}
        if isinstance(default, bool):
            element["initial_option"] = yes if default else no
        return element
    if types in (["integer"], ["number"]):
        element = {
            "type": "number_input",
            "action_id": VALUE_ACTION,
            "is_decimal_allowed": types == ["number"],
        }
        if isinstance(default, int | float) and not isinstance(default, bool):
            element["initial_value"] = str(default)
        return element
    items = schema.get("items")
    if types == ["array"] and isinstance(items, Mapping) and items.get("enum"):
        choices = [c for c in items["enum"] if c is not None][:100]
        element = {
            "type": "multi_static_select",
            "action_id": VALUE_ACTION,
            "options": [_choice(c) for c in choices],
        }
        initial = [_choice(c) for c in choices if isinstance(default, list) and c in default]
        if initial:
            element["initial_options"] = initial
        return element
    element = {"type": "plain_text_input", "action_id": VALUE_ACTION, "multiline": True}
    if types in (["object"], ["array"]):
        if default is not None:
            element["initial_value"] = json.dumps(default, indent=2)
        element["placeholder"] = {"type": "plain_text", "text": "JSON"}
    elif isinstance(default, str) and default:
        element["initial_value"] = default[:3000]
    if isinstance(schema.get("maxLength"), int):
        element["max_length"] = min(schema["maxLength"], 3000)
    if isinstance(schema.get("minLength"), int) and schema["minLength"] > 0:
        element["min_length"] = min(schema["minLength"], 3000)
    return element


def form_params(params: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The HITL params a reviewer fills in (the reserved reviewer key is the bridge's own)."""
    return {k: v for k, v in params.items() if k != SLACK_IDENTITY_KEY and isinstance(v, Mapping)}


def answer_form(
    review: Review, chosen: list[str], params: Mapping[str, Any], metadata: str
) -> dict[str, Any]:
    """The modal asking for the HITL params (a reason, …) before an answer is sent to Airflow."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{escape(plain(review.subject, 2900))}*"}}
    ]
    if review.multiple:
        options = [_option_element(i, o) for i, o in enumerate(review.options[:100])]
        element: dict[str, Any] = {"type": "checkboxes", "action_id": VALUE_ACTION, "options": options[:10]}
        if len(options) > 10:
            element = {"type": "multi_static_select", "action_id": VALUE_ACTION, "options": options}
        initial = [o for o, label in zip(options, review.options, strict=False) if label in chosen]
        if initial:
            element["initial_options"] = initial
        blocks.append(
            {
                "type": "input",
                "block_id": OPTIONS_BLOCK,
                "label": {"type": "plain_text", "text": "Your choice"},
                "element": element,
            }
        )
    else:
        blocks.append(
            {
                "type": "section",
                "block_id": OPTIONS_BLOCK,
                "text": {"type": "mrkdwn", "text": f"Your choice: *{escape(', '.join(chosen))}*"},
            }
        )
    for key, spec in form_params(params).items():
        block: dict[str, Any] = {
            "type": "input",
            "block_id": f"{PARAM_BLOCK_PREFIX}{key}"[:255],
            "label": {"type": "plain_text", "text": _label(key, spec)},
            "element": _param_element(spec),
            "optional": not param_is_required(spec),
        }
        if spec.get("description"):
            block["hint"] = {"type": "plain_text", "text": plain(str(spec["description"]), 2000)}
        blocks.append(block)
    return {
        "type": "modal",
        "callback_id": ANSWER_VIEW,
        "title": {"type": "plain_text", "text": "Answer the review"},
        "submit": {"type": "plain_text", "text": "Send to Airflow"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": metadata,
        "blocks": blocks,
    }


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only tells the reviewer something (replaces the form)."""
    return {
        "type": "modal",
        "title": {"type": "plain_text", "text": plain(title, 24)},
        "close": {"type": "plain_text", "text": "Close"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": plain(text, 3000)}}],
    }


def read_form(
    values: Mapping[str, Any], params: Mapping[str, Any], options: Sequence[str]
) -> tuple[list[str] | None, dict[str, Any], dict[str, str]]:
    """A submitted form: (chosen options if the form asked for them, params_input, errors by block).

    ``params_input`` holds every declared param (HITLOperator fails the task on resume otherwise):
    an empty field becomes ``null`` where the schema allows it, else the param's default. Each value
    is checked against its JSON schema the way Airflow will check it, so an answer that would fail the
    task is refused here, in the form, before anything is written.
    """
    errors: dict[str, str] = {}
    chosen: list[str] | None = None
    if OPTIONS_BLOCK in values:
        state = (values[OPTIONS_BLOCK] or {}).get(VALUE_ACTION) or {}
        picked = [o.get("value") for o in state.get("selected_options") or []]
        chosen = [options[int(i)] for i in picked if str(i).isdigit() and int(i) < len(options)]
        if not chosen:
            errors[OPTIONS_BLOCK] = "Choose at least one option."
    params_input: dict[str, Any] = {}
    for key, spec in form_params(params).items():
        block_id = f"{PARAM_BLOCK_PREFIX}{key}"[:255]
        state = (values.get(block_id) or {}).get(VALUE_ACTION) or {}
        schema = spec.get("schema") or {}
        try:
            value = _field_value(state, schema, spec.get("value"))
        except ValueError as exc:
            errors[block_id] = str(exc)
            continue
        problem = schema_problem(value, schema)
        if problem:
            errors[block_id] = problem
        params_input[key] = value
    return chosen, params_input, errors


def _field_value(state: Mapping[str, Any], schema: Mapping[str, Any], default: Any) -> Any:
    kind = state.get("type")
    nullable = "null" in _types(schema)
    if kind in ("static_select", "radio_buttons"):
        selected = state.get("selected_option")
        return json.loads(selected["value"]) if selected else (None if nullable else default)
    if kind == "checkboxes" and "boolean" in _types(schema):  # forms sent by earlier versions
        return bool(state.get("selected_options"))
    if kind == "multi_static_select":
        picked = [json.loads(o["value"]) for o in state.get("selected_options") or []]
        return picked if picked or not nullable else None
    raw = state.get("value")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None if nullable else default
    types = [t for t in _types(schema) if t != "null"]
    if kind == "number_input" or types in (["integer"], ["number"]):
        number = float(raw)
        if "integer" in types:
            if not number.is_integer():
                raise ValueError("Enter a whole number.")
            return int(number)
        return number
    if types and set(types) <= {"object", "array"}:
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            items = schema.get("items")
            if types == ["array"] and isinstance(items, Mapping) and items.get("type") == "string":
                return [line.strip() for line in raw.splitlines() if line.strip()]  # one per line
            raise ValueError(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from None
    return raw


def schema_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why `value` breaks `schema` (as Airflow's Param validation would say), or None."""
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema comes with contextgraph[slack]
        return None
    try:
        jsonschema.validate(value, dict(schema), format_checker=jsonschema.FormatChecker())
    except jsonschema.ValidationError as exc:
        return plain(exc.message, 300)
    except jsonschema.SchemaError:
        return None
    return None
