"""IPL's built-in backends, registered as an ordinary plugin. Imports stay inside the factories so
nothing heavy loads until a run asks for it."""

from __future__ import annotations

from typing import Any

from ipl_graph.hookspecs import Register, hookimpl


@hookimpl
def register_embedders(register: Register) -> None:
    def efficientnet_lite0() -> Any:
        from ipl_tools.catalog.embedding import EfficientNetEmbedder

        return EfficientNetEmbedder()

    def efficientnet_lite0_int8() -> Any:
        from ipl_tools.catalog.embedding import Int8EfficientNetEmbedder

        return Int8EfficientNetEmbedder()

    def clip(path: str) -> Any:
        from ipl_tools.catalog.clip_embedding import CLIPEmbedder

        return CLIPEmbedder(path)

    register("efficientnet-lite0", efficientnet_lite0)
    register("efficientnet-lite0-int8", efficientnet_lite0_int8)
    register("clip", clip)  # clip:/path/to/checkpoint


@hookimpl
def register_ocr_engines(register: Register) -> None:
    def rapidocr() -> Any:
        from ipl_tools.ocr import RapidOCREngine

        return RapidOCREngine()

    def none() -> Any:
        from ipl_tools.ocr import NoOCR

        return NoOCR()

    register("rapidocr", rapidocr)
    register("none", none)


@hookimpl
def register_nudity_detectors(register: Register) -> None:
    from ipl_tools import nudity

    register("nudenet", nudity.NudeNetDetector)
    register("none", nudity.NoNudityCheck)
    register("auto", nudity.auto_detector)


@hookimpl
def register_categorizers(register: Register) -> None:
    from ipl_tools.categorize import KnnVote

    register("knn-vote", KnnVote)


@hookimpl
def register_searchers(register: Register) -> None:
    def chroma(index_dir: str, embedder: str) -> Any:
        from ipl_tools.catalog.searcher import ChromaSearcher

        return ChromaSearcher(index_dir, embedder)

    register("chroma", chroma)


@hookimpl
def register_extractors(register: Register) -> None:
    from ipl_tools.extract_attributes import EvidenceExtractor

    register("evidence", EvidenceExtractor)


@hookimpl
def register_generators(register: Register) -> None:
    def template(model: str = "", base_url: str = "") -> Any:
        from ipl_tools.template_writer import TemplateChatModel

        return TemplateChatModel()

    def transformers(model: str = "", base_url: str = "") -> Any:
        from ipl_tools.generators.local_vlm import TransformersChatModel

        return TransformersChatModel.from_path(model)

    def openai(model: str = "", base_url: str = "") -> Any:
        from ipl_tools.generators.openai_compat import openai_chat

        return openai_chat(model, base_url)

    register("template", template)
    register("transformers", transformers)
    register("openai", openai)
