"""Build samples/grocery/: a small catalog from the MIT-licensed GroceryStoreDataset (see its LICENSE).

Catalog: each product's iconic image plus its first three shop photos (train split). Queries: one
val-split phone photo of a few products, which are never in the catalog.
Usage: python scripts/make_sample.py ../shared/data/grocery samples/grocery
"""

import json
import shutil
import sys
from collections import defaultdict
from pathlib import Path

PER_PRODUCT = 3
QUERIES = ["Bravo-Apple-Juice", "Arla-Standard-Milk", "Oatly-Oat-Milk", "Granny-Smith", "Banana",
           "Yoggi-Vanilla-Yoghurt"]


def main(src: Path, dst: Path) -> None:
    rows = [json.loads(line) for line in (src / "listings.jsonl").open()]
    chosen, natural = [], defaultdict(int)
    queries = {}
    for row in rows:
        image = row["images"][0]
        if row["role"] == "catalog":
            if "/iconic/" in image or natural[row["spu"]] < PER_PRODUCT:
                natural[row["spu"]] += "/iconic/" not in image
                chosen.append(row)
        else:
            name = Path(image).parent.name
            if name in QUERIES and name not in queries:
                queries[name] = row
    (dst / "images").mkdir(parents=True, exist_ok=True)
    (dst / "queries").mkdir(exist_ok=True)
    with (dst / "listings.jsonl").open("w") as out:
        for row in chosen:
            target = Path("images") / Path(row["images"][0]).name
            shutil.copy(src / row["images"][0], dst / target)
            out.write(json.dumps({**row, "images": [str(target)]}, ensure_ascii=False) + "\n")
    with (dst / "queries.jsonl").open("w") as out:
        for row in queries.values():
            target = Path("queries") / Path(row["images"][0]).name
            shutil.copy(src / row["images"][0], dst / target)
            out.write(json.dumps({**row, "images": [str(target)]}, ensure_ascii=False) + "\n")
    shutil.copy(src / "LICENSE", dst / "LICENSE")
    print(f"{len(chosen)} catalog listings, {len(queries)} queries in {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
