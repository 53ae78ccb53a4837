#!/usr/bin/env python3
"""Reads Prometheus text exposition on stdin with prometheus_client's own parser (the
reference implementation a scrape must satisfy) and prints one JSON object per sample:
{"name": ..., "labels": {...}, "value": ...}. Exits non-zero when the text does not parse."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        print(json.dumps({"family": family.name, "type": family.type, "name": s.name,
                          "labels": s.labels, "value": s.value}))
