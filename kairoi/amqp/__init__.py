"""A lean AMQP 0-9-1 client for publishing with confirms, on pamqp's framing.

Why not aio-pika here: see docs/runners.md, "Why the AMQP runner has its own client".
"""
