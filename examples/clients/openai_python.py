"""The official OpenAI SDK against Sluice (`make run` first). Plain and streaming."""

import openai

client = openai.OpenAI(base_url="http://127.0.0.1:10000/v1", api_key="sk-sluice-demo")

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
