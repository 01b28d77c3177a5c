"""The catalog machinery: index, learning, probes, embedding, colour, health, Chroma and Ray."""
