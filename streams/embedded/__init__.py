"""Real local services for the demo and the integration tests, all bound to 127.0.0.1.

- :mod:`streams.embedded.broker` — Tansu Kafka broker (``start_broker``)
- :mod:`streams.embedded.dns_server` — authoritative DNS over UDP+TCP (``start_dns_server``)
- :mod:`streams.embedded.smtp_sink` — SMTP delivery sink (``start_smtp_sink``,
  ``read_deliveries``)
- :mod:`streams.embedded.procs` — child-process lifecycle shared by all three

Nothing is imported here on purpose: the DNS and SMTP children start with
``python -m streams.embedded.…`` and should not pay for importing Kafka clients.
"""
