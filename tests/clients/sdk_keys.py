"""Call the gateway the way each official SDK does, with its own credential header.

Usage: sdk_keys.py BASE_URL KEY

- OpenAI SDK: `Authorization: Bearer KEY` to /v1/chat/completions
- OpenAI SDK's AzureOpenAI client: `api-key: KEY` to /openai/deployments/{d}/chat/completions
- Anthropic SDK: `x-api-key: KEY` to /v1/messages

Prints one JSON object: per SDK, the assistant's text or the error status and body.
"""

import json
import sys

import anthropic
import openai


def attempt(fn):
    try:
        return {"text": fn()}
    except (openai.APIStatusError, anthropic.APIStatusError) as e:
        return {"status": e.status_code, "body": e.body}


def main() -> int:
    base, key = sys.argv[1], sys.argv[2]
    msgs = [{"role": "user", "content": "key check"}]
    out = {}

    oa = openai.OpenAI(base_url=base + "/v1", api_key=key, max_retries=0, timeout=30)
    out["openai"] = attempt(
        lambda: oa.chat.completions.create(model="gpt-4o-mini", messages=msgs).choices[0].message.content
    )

    az = openai.AzureOpenAI(
        azure_endpoint=base, api_key=key, api_version="2024-10-21", max_retries=0, timeout=30
    )
    out["azure"] = attempt(
        lambda: az.chat.completions.create(model="gpt-4o-mini", messages=msgs).choices[0].message.content
    )

    an = anthropic.Anthropic(base_url=base, api_key=key, max_retries=0, timeout=30)
    out["anthropic"] = attempt(
        lambda: an.messages.create(model="claude-sonnet-5-5", max_tokens=32, messages=msgs).content[0].text
    )
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
