"""Answering a question: link -> retrieve -> read -> rank -> calibrate, and the faces that wrap it.

``pipeline.AskPipeline`` is the one chain the CLI, the app, the API and the evaluations drive.
"""
