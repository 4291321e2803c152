"""Built-in stages, imported in dependency order (each registers itself)."""

from precompute.stages import survey, thumbnails, encoder, embeddings, sae, features, index, clusters  # noqa: F401
