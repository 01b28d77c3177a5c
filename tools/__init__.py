"""IPL's tool nodes, one module per node, with their default backends (installed as `ipl_tools`)."""
