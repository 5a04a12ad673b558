"""Routing: which tier answers a request, and why (policies first, then predicted quality and cost)."""
