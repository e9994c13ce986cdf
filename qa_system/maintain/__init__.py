"""What graph maintainers do: review proposed facts, forget documents, merge duplicates.

Every action here changes facts that ``ask`` reads at the next question, so each one goes through the
``GraphStore`` contract and records what it did.
"""
