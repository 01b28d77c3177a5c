"""Policy files (YAML), shipped in the wheel and loaded by `ipl_graph.policies`."""
