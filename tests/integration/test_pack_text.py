"""The words read on a pack pick its product and category among look-alikes: the real embedder, the
real index of the bundled sample, the searcher and the category vote (the OCR text is given, so the
test says which words were read)."""

from __future__ import annotations

from helpers import QUERIES
from ipl_graph.backends import CategoryRequest
from ipl_graph.policies import load_policy
from ipl_tools.catalog.searcher import ChromaSearcher
from ipl_tools.categorize import KnnVote
from ipl_tools.photos import resolve


def test_the_packs_words_bring_the_product_they_name_first_and_carry_the_vote(sample_index):
    searcher = ChromaSearcher(sample_index, "efficientnet-lite0")
    photo = resolve(str(QUERIES / "Oatly-Oat-Milk_001.jpg"), load_policy().limits)
    seen = searcher.search([photo], 10)
    assert seen[0].category == "Oat-Milk" and all(n.text_match == 0.0 for n in seen)
    oatghurt = next(n for n in seen if n.category == "Oatghurt")  # a sibling further down
    assert seen.index(oatghurt) > 0

    read = searcher.search([photo], 10, ("OATLY", "havregurt", "Natural OATGHURT"))
    assert read[0].id == oatghurt.id and read[0].text_match > 0.3
    assert read[0].similarity == oatghurt.similarity  # the gate still asks the photos alone
    assert read[0].evidence > seen[0].similarity

    model = searcher.calibration

    def voted(hits):
        return KnnVote().categorize(CategoryRequest(neighbours=hits, min_confidence=0.0,
                                                    calibrate=model.category_confidence,
                                                    photos=model.category_photos)).name

    assert voted(seen) == "Oat-Milk" and voted(read) == "Oatghurt"
