#!/usr/bin/env python3
"""Verifies webhooks Intake sent with the official `standardwebhooks` package (PyPI):
code we did not write checks our signatures.

Usage: verify_webhooks.py CAPTURE.json SECRET
CAPTURE.json is a list of {"headers": {name: value}, "body": "<the body as sent>"}.
Exits 0 when every one verifies, 1 naming the first that does not.
"""
import json
import sys

from standardwebhooks.webhooks import Webhook


def main() -> int:
    capture, secret = sys.argv[1], sys.argv[2]
    with open(capture, encoding="utf-8") as f:
        requests = json.load(f)
    verifier = Webhook(secret)
    for i, request in enumerate(requests):
        try:
            verifier.verify(request["body"], request["headers"])
        except Exception as e:  # the package raises its own WebhookVerificationError
            print(f"request {i} ({request['headers'].get('webhook-id')}) does not verify: {e}")
            return 1
    print(f"{len(requests)} webhooks verified by standardwebhooks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
