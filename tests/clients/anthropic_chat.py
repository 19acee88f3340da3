"""Drive a Messages call through the official `anthropic` Python SDK and print what it saw.

Usage: anthropic_chat.py BASE_URL MODEL PROMPT [--api-key KEY] [--header NAME:VALUE ...]

Prints one JSON object: the plain answer (`model_dump()`), and for the same prompt streamed,
the event types in order, the streamed text and the final message the SDK assembled.
"""

import argparse
import json
import sys

import anthropic


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("base_url")
    ap.add_argument("model")
    ap.add_argument("prompt")
    ap.add_argument("--api-key", default="sk-test")
    ap.add_argument("--header", action="append", default=[], help="NAME:VALUE sent on every request")
    args = ap.parse_args()
    headers = dict(h.split(":", 1) for h in args.header)

    client = anthropic.Anthropic(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=30, default_headers=headers)
    messages = [{"role": "user", "content": args.prompt}]
    out = {}
    try:
        out["plain"] = client.messages.create(model=args.model, max_tokens=256, messages=messages).model_dump()
        with client.messages.stream(model=args.model, max_tokens=256, messages=messages) as stream:
            events = [event.type for event in stream]
            final = stream.get_final_message()
        out["stream"] = {"events": events, "final": final.model_dump()}
    except anthropic.APIStatusError as e:
        out["error"] = {"status": e.status_code, "body": e.body}
    print(json.dumps(out, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
