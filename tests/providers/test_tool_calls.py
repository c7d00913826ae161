"""The tool-call parser and prompt rendering of the llama.cpp provider (no model needed)."""

from __future__ import annotations

import json

import pytest

from xiaozhi_hub.providers.base import ChatMessage, TextDelta, ToolCall, ToolSpec
from xiaozhi_hub.providers.tool_calls import ToolCallParser, parse_tool_payload, to_template_messages

LIGHT = ToolSpec(name="set_light", description="Turn a light on or off",
                 parameters={"type": "object", "properties": {"room": {"type": "string"}}})


def run(pieces: list[str]) -> list[object]:
    parser = ToolCallParser()
    out: list[object] = []
    for p in pieces:
        out.extend(parser.feed(p))
    out.extend(parser.finish())
    return out


def text_of(events: list[object]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def calls_of(events: list[object]) -> list[ToolCall]:
    return [e for e in events if isinstance(e, ToolCall)]


CALL = '<tool_call>\n{"name": "set_light", "arguments": {"room": "kitchen", "on": true}}\n</tool_call>'


@pytest.mark.parametrize("chunking", ["whole", "chars", "tokens"])
def test_tool_call_is_found_however_the_stream_is_split(chunking: str):
    reply = "Sure. " + CALL
    pieces = {"whole": [reply], "chars": list(reply),
              "tokens": ["Sure", ".", " <", "tool", "_call", ">\n{\"", "name", "\": \"set_light\", \"arguments\": {\"room\": \"kitchen\", \"on\": true}}\n</", "tool_call", ">"]}[chunking]
    events = run(pieces)
    assert text_of(events) == "Sure. "
    [call] = calls_of(events)
    assert call.name == "set_light" and call.arguments == {"room": "kitchen", "on": True}
    assert call.id.startswith("call_")


def test_plain_text_streams_without_waiting_for_the_end():
    parser = ToolCallParser()
    assert parser.feed("Hello there") == [TextDelta("Hello there")]
    assert parser.feed(", friend <") == [TextDelta(", friend ")]       # "<" might open a tag: held
    assert parser.feed("3 you") == [TextDelta("<3 you")]
    assert parser.finish() == []


def test_bare_json_reply_is_a_tool_call_and_never_spoken():
    events = run(['{"name": "set_light", ', '"arguments": "{\\"room\\": \\"hall\\"}"}'])
    assert text_of(events) == ""
    assert calls_of(events)[0].arguments == {"room": "hall"}


def test_json_that_is_not_a_call_is_spoken_as_text():
    events = run(['{"answer": 42}'])
    assert calls_of(events) == [] and text_of(events) == '{"answer": 42}'


def test_several_calls_and_text_after_them():
    events = run([CALL, " and ", CALL.replace("kitchen", "porch"), " Done."])
    assert [c.arguments["room"] for c in calls_of(events)] == ["kitchen", "porch"]
    assert text_of(events) == " and  Done."


def test_unterminated_call_at_the_end_is_still_parsed():
    events = run(['<tool_call>{"name": "set_light", "arguments": {}}'])
    assert [c.name for c in calls_of(events)] == ["set_light"]


def test_garbage_inside_tags_is_dropped_not_read_aloud():
    parser = ToolCallParser()
    events = parser.feed("<tool_call>not json</tool_call>") + parser.finish()
    assert events == [] and parser.dropped == ["not json"]


def test_payload_with_a_list_and_parameters_key():
    calls = parse_tool_payload('[{"name": "a", "parameters": {"x": 1}}, {"name": "b"}]')
    assert [(c.name, dict(c.arguments)) for c in calls] == [("a", {"x": 1}), ("b", {})]


HISTORY = [
    ChatMessage(role="user", content="Switch off the hall light."),
    ChatMessage(role="assistant", tool_calls=(ToolCall(id="c1", name="set_light", arguments={"room": "hall"}),)),
    ChatMessage(role="tool", content='{"ok": true}', tool_call_id="c1", name="set_light"),
]


def test_prompted_style_describes_tools_in_the_system_message_and_renders_history_calls():
    msgs, tools = to_template_messages(HISTORY, [LIGHT], native_tools=False, default_system="Be brief.")
    assert tools is None
    assert msgs[0]["role"] == "system" and msgs[0]["content"].startswith("Be brief.")
    assert '"name": "set_light"' in msgs[0]["content"] and "<tool_call>" in msgs[0]["content"]
    assert msgs[2] == {"role": "assistant",
                       "content": '<tool_call>\n{"name": "set_light", "arguments": {"room": "hall"}}\n</tool_call>'}
    assert msgs[3] == {"role": "tool", "content": '{"ok": true}'}
    strict, _ = to_template_messages(HISTORY, [], native_tools=False, default_system="x", tool_role=False)
    assert strict[3] == {"role": "user", "content": '<tool_response>\n{"ok": true}\n</tool_response>'}


def test_native_style_passes_tools_and_structured_calls_to_the_template():
    msgs, tools = to_template_messages(HISTORY, [LIGHT], native_tools=True, default_system="Be brief.")
    assert tools == [{"type": "function", "function": {"name": "set_light", "description": "Turn a light on or off",
                                                       "parameters": dict(LIGHT.parameters)}}]
    assert msgs[0] == {"role": "system", "content": "Be brief."}
    assert msgs[2]["tool_calls"][0]["function"] == {"name": "set_light", "arguments": {"room": "hall"}}
    assert msgs[3]["tool_call_id"] == "c1"
    json.dumps(msgs)   # what the template receives is plain JSON data


# A reduced ChatML template with native tools, shaped like Qwen2.5's (tools listed in the system turn,
# calls rendered from tool_call.function with arguments|tojson, tool results as <tool_response>).
QWEN_LIKE = """
{%- if tools %}<|im_start|>system
{{ messages[0].content }}
<tools>
{%- for tool in tools %}
{{ tool | tojson }}
{%- endfor %}
</tools><|im_end|>
{% endif %}
{%- for message in messages %}
{%- if message.role == "system" and tools %}
{%- elif message.role == "assistant" and message.tool_calls %}<|im_start|>assistant
{%- for tool_call in message.tool_calls %}{% set call = tool_call.function %}
<tool_call>
{"name": "{{ call.name }}", "arguments": {{ call.arguments | tojson }}}
</tool_call>
{%- endfor %}<|im_end|>
{% elif message.role == "tool" %}<|im_start|>user
<tool_response>
{{ message.content }}
</tool_response><|im_end|>
{% else %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def test_native_messages_render_through_a_qwen_style_template():
    Jinja2ChatFormatter = pytest.importorskip("llama_cpp.llama_chat_format").Jinja2ChatFormatter
    msgs, tools = to_template_messages(HISTORY, [LIGHT], native_tools=True, default_system="Be brief.")
    prompt = Jinja2ChatFormatter(template=QWEN_LIKE, eos_token="<|im_end|>", bos_token="")(
        messages=msgs, tools=tools).prompt
    assert '"name": "set_light"' in prompt and "<tools>" in prompt
    assert '<tool_call>\n{"name": "set_light", "arguments": {"room": "hall"}}\n</tool_call>' in prompt
    assert '<tool_response>\n{"ok": true}\n</tool_response>' in prompt
    assert prompt.endswith("<|im_start|>assistant\n")
    # ...and what such a model answers is parsed back into a call.
    reply = '<tool_call>\n{"name": "set_light", "arguments": {"room": "kitchen"}}\n</tool_call>'
    assert [c.arguments for c in calls_of(run([reply]))] == [{"room": "kitchen"}]
