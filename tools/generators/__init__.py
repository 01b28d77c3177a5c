"""Model-backed generators: LangChain chat models that write the description.

`local_vlm` runs a local image-text-to-text model with transformers; `openai_compat` talks to any
OpenAI-compatible server (vLLM, SGLang, Ollama). `tiny_vlm` builds a tiny random Qwen2-VL from a
config and `replay_server` serves recorded streaming replies, for tests and benchmarks without
weights or network. The default `template` generator lives in `ipl_tools.template_writer`.
"""
