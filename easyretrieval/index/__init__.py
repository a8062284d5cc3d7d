"""Persistent gallery indexes of feature vectors (FAISS), app-agnostic."""
from easyretrieval.index.gallery_store import KINDS, GalleryIndex, GalleryStore, SearchHits

__all__ = ["KINDS", "GalleryIndex", "GalleryStore", "SearchHits"]
