#!/usr/bin/env python3
"""A real SOAP client for the peerdex time service, built from its WSDL by zeep.

Usage: python3 tests/soap_client.py URL   (URL like http://localhost:8000/)

Fetches URL?wsdl, lets zeep build the client from it (so the call goes to the
soap:address the WSDL names), calls get_time and checks the answer is a time in the
protocol's form dd/mm/YYYY HH:MM:SS. Prints the time on success.

Exit codes: 0 success; 1 the call failed or the answer is wrong; 3 zeep is not
installed (the Rust test decides whether that skips or fails).
"""

import sys
from datetime import datetime

try:
    import zeep
except ImportError:
    print("zeep is not installed (pip install zeep)", file=sys.stderr)
    sys.exit(3)


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 1
    url = sys.argv[1]
    transport = zeep.Transport(timeout=10, operation_timeout=10)
    client = zeep.Client(url + "?wsdl", transport=transport)
    answer = client.service.get_time()
    if not isinstance(answer, str):
        print(f"get_time returned {answer!r}, not a string", file=sys.stderr)
        return 1
    try:
        datetime.strptime(answer, "%d/%m/%Y %H:%M:%S")
    except ValueError:
        print(f"get_time returned {answer!r}, not dd/mm/YYYY HH:MM:SS", file=sys.stderr)
        return 1
    if len(answer) != 19:
        print(f"get_time returned {answer!r}: not zero-padded", file=sys.stderr)
        return 1
    print(answer)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any zeep/transport error is a test failure, reported
        print(f"SOAP call failed: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
