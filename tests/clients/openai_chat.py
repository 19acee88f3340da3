"""Drive a chat completion through the official `openai` Python SDK and print what it saw.

Usage: openai_chat.py BASE_URL MODEL PROMPT [--api-key KEY] [--header NAME:VALUE ...]

Prints one JSON object: the plain answer (`model_dump()` of the SDK's object) and, for the same
prompt streamed with `include_usage`, every chunk the SDK yielded, in order. The Rust tests run
this against Envoy and against the mock provider directly and compare.
"""

import argparse
import json
import sys

import openai


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--api-key", default="sk-test")
    ap.add_argument("--header", action="append", default=[], help="NAME:VALUE sent on every request")
    args = ap.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30, default_headers=headers)
    messages = [{"role": "user", "content": args.prompt}]
    out = {}
    try:
        plain = client.chat.completions.create(model=args.model, messages=messages)
        out["plain"] = plain.model_dump()
        stream = client.chat.completions.create(
            model=args.model,
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
        out["stream"] = [chunk.model_dump() for chunk in stream]
    except openai.APIStatusError as e:
        out["error"] = {"status": e.status_code, "body": e.body}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
