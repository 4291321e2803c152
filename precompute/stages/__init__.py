"""Built-in stages, imported in dependency order (each registers itself)."""

from precompute.stages import survey, thumbnails, encoder, embeddings, sae, features, index  # noqa: F401
