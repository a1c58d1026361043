"""Calling the earful service from Python (standard library only).

    python serving/client_example.py http://127.0.0.1:3000 "My parcel never arrived"

Set EARFUL_API_KEY when the service requires a key.
"""

import json
import os
import sys
import urllib.error
import urllib.request


def classify(base_url: str, posts: list[dict], api_key: str | None = None, timeout: float = 30) -> dict:
    """POST /classify; returns {"results": [...], "model": {...}}. Retries once after a 503 (overload)."""
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = json.dumps({"posts": posts}).encode()
    for attempt in range(2):
        req = urllib.request.Request(base_url.rstrip("/") + "/classify", data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            if e.code == 503 and attempt == 0:
                import time

                time.sleep(float(e.headers.get("Retry-After", "1")))
                continue
            raise RuntimeError(f"earful answered {e.code}: {e.read().decode(errors='replace')}") from None
    raise RuntimeError("earful stayed overloaded")


if __name__ == "__main__":
    url, *texts = sys.argv[1:] or ["http://127.0.0.1:3000", "I was charged twice and support never answered"]
    out = classify(url, [{"id": str(i), "text": t} for i, t in enumerate(texts)], os.environ.get("EARFUL_API_KEY"))
    for r in out["results"]:
        print(r["id"], r["complaint_type"]["label"], r["sentiment"]["label"], f"troll={r['troll']}", r["lang"]["code"])
