"""The official Anthropic SDK against Sluice's /v1/messages (`make run` first). Plain and streaming.

`make run` routes claude-* models to the mock provider's Anthropic endpoint (with
SLUICE_PROVIDERS=1 and ANTHROPIC_API_KEY set, to Anthropic). The caller's key goes in
x-api-key, as the SDK sends it; the gateway swaps it for the provider's credential.

SLUICE_PORT (default 10000) and SLUICE_KEY (default: the demo consumer's key, sk-sluice-demo).
Run with the repo's Python: .venv/bin/python examples/clients/anthropic_python.py
"""

import os

import anthropic

MODEL = "claude-sonnet-5-5"

port = os.environ.get("SLUICE_PORT", "10000")
key = os.environ.get("SLUICE_KEY", "sk-sluice-demo")
client = anthropic.Anthropic(base_url=f"http://127.0.0.1:{port}", api_key=key)

message = client.messages.create(
    model=MODEL,
    max_tokens=256,
    messages=[{"role": "user", "content": "Hello, Sluice!"}],
)
print(message.content[0].text, message.usage)

with client.messages.stream(
    model=MODEL,
    max_tokens=256,
    messages=[{"role": "user", "content": "Stream me, Sluice!"}],
) as stream:
    for text in stream.text_stream:
        print(text, end="", flush=True)
    print("\n", stream.get_final_message().usage)
