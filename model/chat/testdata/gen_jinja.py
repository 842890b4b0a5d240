#!/usr/bin/env python3
"""Render the chat templates in templates/*.jinja with real Jinja, set up as Hugging Face transformers
does in apply_chat_template (sandboxed, trim_blocks, lstrip_blocks, raise_exception), for a set of
conversations, and write jinja_renders.json: the ground truth TestRenderMatchesJinja checks
Template.Render against. CI needs no Jinja: the committed output is what the test reads.

    cd model/chat/testdata && python3 gen_jinja.py
"""
import json
import os

import jinja2.ext
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOKENS = {  # bos_token, eos_token as the families' tokenizer_config.json give them
    "llama3": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama31": ("<|begin_of_text|>", "<|eot_id|>"),
    "llama2": ("<s>", "</s>"),
    "mistral01": ("<s>", "</s>"),
    "mistral02": ("<s>", "</s>"),
    "chatml": ("", "<|im_end|>"),
    "qwen2": ("", "<|im_end|>"),
    "zephyr": ("<s>", "</s>"),
}

S = {"role": "system", "content": "You are a helpful assistant."}
U1 = {"role": "user", "content": "Hello!"}
A1 = {"role": "assistant", "content": "Hi! How can I help?"}
U2 = {"role": "user", "content": "Tell me a story."}
CONVERSATIONS = [
    [S, U1, A1, U2],
    [U1, A1, U2],
    [U1],
    [],
    [{"role": "system", "content": " Be brief.\n"}, {"role": "user", "content": "  two\nlines  \n"}],
    [U1, {"role": "assistant", "content": " spaced answer \n"}, {"role": "user", "content": "日本語 😀"}],
    [U1, U2],
    [A1],
]


def raise_exception(message):
    raise TemplateError(message)


def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    env.globals["raise_exception"] = raise_exception
    out = []
    for name in sorted(TOKENS):
        with open(os.path.join("templates", name + ".jinja"), encoding="utf-8") as f:
            src = f.read()
        tmpl = env.from_string(src)
        bos, eos = TOKENS[name]
        for msgs in CONVERSATIONS:
            for gen in (True, False):
                rec = {"template": name, "bos": bos, "eos": eos, "messages": msgs, "add_generation_prompt": gen}
                try:
                    rec["output"] = tmpl.render(messages=msgs, add_generation_prompt=gen,
                                                bos_token=bos, eos_token=eos)
                except TemplateError as e:
                    rec["error"] = str(e)
                out.append(rec)
    with open("jinja_renders.json", "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, ensure_ascii=False) for r in out) + "\n]\n")
    print(f"wrote jinja_renders.json: {len(out)} renders")


if __name__ == "__main__":
    main()
