"""Trunk failover groups: carriers behind one SIP proxy that replace each other.

``decide`` (pure) says what to change; ``kamailio`` talks to the proxy; the
service that ties them to the engine's events is ``runbooks.failover.service``.
"""
