"""ipl_graph.taming: optional imports blocked for one import, and the Guard and Chroma built without them."""

import subprocess
import sys

import pytest

from ipl_graph.taming import without


def test_without_blocks_a_module_for_the_block_only():
    name = "colorsys"
    sys.modules.pop(name, None)
    with without(name), pytest.raises(ImportError):
        import colorsys  # noqa: F401
    import colorsys  # noqa: F401, F811 - importable again after the block

    assert sys.modules[name] is not None


def test_without_leaves_an_imported_module_alone():
    import json

    with without("json"):
        import json as again
    assert again is json


def test_guard_and_catalog_import_without_the_extras(tmp_path):
    code = (
        "import sys\n"
        "from ipl_tools.moderate_stream import guard\n"
        "from ipl_tools.catalog.index import Catalog\n"
        "from ipl_graph.policies import load_policy\n"
        "from ipl_tools.moderate_stream import first_violation\n"
        f"Catalog({str(tmp_path)!r}, create=True)\n"
        "guard()\n"
        "print(first_violation('Call me on 555 123 4567.', load_policy()) is not None,"
        " 'nltk' in sys.modules, 'rfc3987_syntax' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "False", "False"]


def test_a_paused_collector_runs_again_after_the_cold_start_and_skips_what_it_made():
    code = (
        "import gc\n"
        "from ipl_graph import taming\n"
        "taming.collector_paused()\n"
        "paused = not gc.isenabled()\n"
        "made = [[i] for i in 100_000 * [0]]\n"
        "taming.settle()\n"
        "print(paused, gc.isenabled(), gc.get_freeze_count() >= len(made))\n"
        "taming.settle()\n"  # a second settle (the worker's every request) changes nothing
        "print(gc.isenabled())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.split() == ["True", "True", "True", "True"]


def test_chromadb_imports_marks_its_overrides_unchecked_and_restores_the_checks():
    code = (
        "import overrides\n"
        "checked = overrides.override\n"
        "from ipl_graph.taming import chromadb_imports\n"
        "with chromadb_imports():\n"
        "    import chromadb\n"
        "    inside = overrides.override is not checked\n"
        "from chromadb.api.rust import RustBindingsAPI\n"
        "print(inside, overrides.override is checked, RustBindingsAPI._count.__override__)\n"
        "class Base:\n"
        "    def f(self, x): ...\n"
        "try:\n"
        "    class Child(Base):\n"
        "        @overrides.override\n"
        "        def f(self): ...\n"  # a signature the checks refuse, outside the block
        "except TypeError:\n"
        "    print('checked')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "True", "True", "checked"]
