"""Growing the graph from text: documents -> sentences -> extracted triples -> resolved entities -> facts.

The extractor models live in ``qa_system.models``; this room turns their triples into graph facts and
passages, with a preview before anything is written.
"""
