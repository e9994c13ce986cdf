"""When the graph cannot answer: the LLM client, its answer and claimed triples, and their validation.

Nothing an LLM says enters the graph here unvalidated: ``validation`` checks each claimed triple by
entailment against retrieved evidence, and ``qa_system.maintain.review`` inserts only what passed.
"""
