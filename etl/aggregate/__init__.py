"""Gold-layer aggregates: DuckDB SQL models and the index logic they share (indices)."""
