// Embedded store: the embeddings of a page of answered decisions ($keys) for the vector index
// beside the file, each found by its primary key (EmbeddedStore._index_rows).
UNWIND $keys AS k
MATCH (e:DecisionEmbedding {key: k})
RETURN e.key AS key, e.embedding_model AS model, e.embedding AS embedding
