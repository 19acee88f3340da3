"""The official OpenAI SDK against Sluice (`make run` first). Plain and streaming.

SLUICE_PORT (default 10000) and SLUICE_KEY (default: the demo consumer's key, sk-sluice-demo).
Run with the repo's Python: .venv/bin/python examples/clients/openai_python.py
"""

import os

import openai

port = os.environ.get("SLUICE_PORT", "10000")
key = os.environ.get("SLUICE_KEY", "sk-sluice-demo")
client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key)

answer = client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Hello, Sluice!"}],
)
print(answer.choices[0].message.content, answer.usage)

for chunk in client.chat.completions.create(
    model="gpt-4o-mini",
    messages=[{"role": "user", "content": "Stream me, Sluice!"}],
    stream=True,
    stream_options={"include_usage": True},
):
    if chunk.choices and chunk.choices[0].delta.content:
        print(chunk.choices[0].delta.content, end="", flush=True)
    if chunk.usage:
        print("\n", chunk.usage)
