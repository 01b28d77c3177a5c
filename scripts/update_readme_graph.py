"""Write the graph's mermaid picture, drawn from the code, into README.md between its markers."""

from pathlib import Path

from ipl_graph.graph import graph

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- graph:start -->", "<!-- graph:end -->"


def render() -> str:
    return f"{START}\n```mermaid\n{graph.get_graph().draw_mermaid().strip()}\n```\n{END}"


if __name__ == "__main__":
    text = README.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    README.write_text(head + render() + tail)
