"""The ask path's stages that read the store directly (no trained vocabulary): see ``relation_reader``."""
