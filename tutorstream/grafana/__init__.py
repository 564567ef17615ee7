"""Grafana boards as code: builders, Grafana's SQL macro expansion, and pushing to Grafana."""
