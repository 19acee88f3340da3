#!/usr/bin/env bash
# curl against Sluice (`make run` first): JSON, then SSE streaming (-N shows events as they come).
PORT="${SLUICE_PORT:-10000}"
curl -s "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello, Sluice!"}]}'
echo
curl -sN "http://127.0.0.1:$PORT/v1/chat/completions" -H 'content-type: application/json' \
  -d '{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Stream me"}]}'
