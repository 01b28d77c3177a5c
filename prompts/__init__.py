"""Prompt files, shipped in the wheel and loaded by `ipl_graph.prompts`."""
