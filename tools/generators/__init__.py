"""Model-backed generators: LangChain chat models that write the description.

`local_vlm` runs a local image-text-to-text model with transformers; `openai_compat` talks to any
OpenAI-compatible server (vLLM, SGLang, Ollama); `replay_server` serves recorded streaming replies
(cassettes) in its place. The default `template` generator lives in `ipl_tools.template_writer`. The
tiny random Qwen2-VL that tests and benchmarks load is a test fixture: `tests/tiny_vlm.py`, not shipped.
"""
