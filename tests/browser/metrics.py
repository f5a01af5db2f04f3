#!/usr/bin/env python3
"""Scrapes the dashboard's /metrics as Prometheus would and parses it with the
official Python client's parser (prometheus_client.parser), which rejects what the
text exposition format does not allow. Prints the families as JSON:

    {"families": {"NAME": {"type": "counter", "samples": [[name, {labels}, value]]}},
     "content_type": "..."}

Not a browser: the other program a dashboard's operator points at it. Run by
tests/dashboard.rs.
"""

import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def main():
    url = sys.argv[1]
    with urllib.request.urlopen(url, timeout=30) as r:
        content_type = r.headers.get("Content-Type", "")
        text = r.read().decode("utf-8")
    families = {}
    for fam in text_string_to_metric_families(text):
        if fam.name in families:
            raise SystemExit("family %s twice" % fam.name)
        families[fam.name] = {
            "type": fam.type,
            "help": fam.documentation,
            "samples": [[s.name, s.labels, s.value] for s in fam.samples],
        }
    print(json.dumps({"families": families, "content_type": content_type}))


if __name__ == "__main__":
    main()
