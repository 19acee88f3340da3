"""Regenerate corpus.json: texts and the token counts Python `tiktoken` gives them.

Run from the repo root with the project venv:  .venv/bin/python filters/sluice-core/testdata/tokens/make_corpus.py

Works offline (tests/clients/tiktoken_offline.py). Counts are `len(enc.encode(text, disallowed_special=()))`,
special-token text counted as plain text; byte inputs are decoded with errors="replace" first.
"""

import json
import os
import random
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../../../tests/clients"))
import tiktoken_offline  # noqa: E402  (sets up the offline cache)

ENCODINGS = ["cl100k_base", "o200k_base"]


TEXTS = [
    ("empty", ""),
    ("hello", "hello world"),
    ("space", " "),
    ("whitespace runs", "a   b\n\n\n  c\t\t d   \n \n\t"),
    ("trailing spaces", "end of line    \nnext line  "),
    ("newlines only", "\n\n\n\n"),
    ("spaces before newline", "x  \n  y \r\n z\r\r\n"),
    ("contractions", "don't I'll we've THEY'RE it's You'd she'S"),
    ("numbers", "1234567890 3.14159 1,000,000 0x1F 2024-11-25 12:30:45"),
    ("punctuation", "!!! ??? ... --- ;;; (([[{{}}]])) @#$%^&*_+=|\\~`"),
    ("chinese", "混合专家模型的推理速度很快，但内存占用很大。"),
    ("japanese", "東京は日本の首都です。ひらがなとカタカナ、そして漢字。"),
    ("korean", "안녕하세요, 세계! 한국어 텍스트입니다."),
    ("arabic", "مرحبا بالعالم، هذا نص عربي للاختبار."),
    ("hebrew", "שלום עולם, זה טקסט בעברית."),
    ("hindi", "नमस्ते दुनिया, यह हिंदी पाठ है।"),
    ("thai", "สวัสดีชาวโลก นี่คือข้อความภาษาไทย"),
    ("russian", "Привет, мир! Съешь же ещё этих мягких французских булок."),
    ("greek", "Γειά σου Κόσμε! Ξεσκεπάζω την ψυχοφθόρα βδελυγμία."),
    ("vietnamese", "Tiếng Việt có dấu: Xin chào thế giới, đường phố Hà Nội."),
    ("german", "Donaudampfschifffahrtsgesellschaftskapitän und Größenänderung"),
    ("combining marks", "e\u0301 a\u0308 n\u0303 Z\u0351\u0352\u0353 cafe\u0301"),
    ("emoji", "🦀🦀🦀 I ❤️ Rust! 👍🏽 👨‍👩‍👧‍👦 🇫🇷🇯🇵 🏳️‍🌈"),
    ("emoji words", "ok👌good😀 yes✅no❌"),
    ("rust code", 'fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!("{:?}", v);\n}\n'),
    ("python code", "def f(x):\n    if x > 0:\n        return x ** 2\n    return -x\n\n\nprint(f(3))\n"),
    ("json", '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"temperature":0.2}'),
    ("html", "<div class=\"a\"><p>Hello &amp; welcome</p><br/></div>"),
    ("url", "https://example.com/path/to/page?query=1&other=two#frag"),
    ("base64", "SGVsbG8gV29ybGQhIFRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dC4="),
    ("long run", "a" * 1000),
    ("long word", "supercalifragilisticexpialidocious" * 20),
    ("special token text", "<|endoftext|> <|im_start|>user<|im_end|> <|fim_prefix|>"),
    ("mixed case", "HTTPServerError getHTTPResponseCode XMLHttpRequest camelCaseWord"),
    ("apostrophes unicode", "it’s they’re ‘quoted’ “double”"),
    ("lorem", "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua."),
    ("tabs and indent", "\t\tindented\n\t\t\tmore\n    spaces\n"),
    ("cr only", "line1\rline2\rline3"),
    ("nbsp and zwsp", "a\u00a0b\u200bc\u2028d\u3000e"),
    ("math", "∑_{i=1}^{n} x_i² ≤ ∫₀^∞ e^{-x} dx ≈ π/4 ≠ √2"),
]

# Invalid UTF-8, counted after replacement (stored as hex in the corpus).
BYTES = [
    ("invalid bytes", b"abc\xff\xfedef"),
    ("truncated sequence", b"\xe6\x97 end"),
    ("overlong", b"\xc0\x80x\xe0\x80\x80"),
    ("encoded surrogate", b"a\xed\xa0\x80b"),
    ("truncated emoji at end", "🦀".encode()[:3]),
]


def random_texts(n: int):
    pool = list("abcXYZ 019.,;'\"\n\t  ") + list("éßçøñ日本語한국어مرحبا") + ["🦀", "👍🏽", "’", "\u0301", "\r\n"]
    rng = random.Random(20261125)
    for i in range(n):
        yield (f"random {i}", "".join(rng.choice(pool) for _ in range(rng.randrange(1, 200))))


def main() -> None:
    import tiktoken

    encs = {name: tiktoken_offline.encoding(name) for name in ENCODINGS}

    def counts(text: str) -> dict:
        return {name: len(e.encode(text, disallowed_special=())) for name, e in encs.items()}

    entries = [{"name": n, "text": t, **counts(t)} for n, t in TEXTS]
    entries += [{"name": n, "text": t, **counts(t)} for n, t in random_texts(60)]
    entries += [{"name": n, "hex": b.hex(), **counts(b.decode("utf-8", "replace"))} for n, b in BYTES]
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"tiktoken": tiktoken.__version__, "entries": entries}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(entries)} entries to {out}")


if __name__ == "__main__":
    main()
