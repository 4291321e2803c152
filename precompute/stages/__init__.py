"""Built-in stages, imported in dependency order (each registers itself)."""

from precompute.stages import (  # noqa: F401
    survey, thumbnails, encoder, zoobot, embeddings, sae, matryoshka, pca, features, index, maps, sfnet, probes, cluster_fields, clusters,
    autoencoder, forge,
)
